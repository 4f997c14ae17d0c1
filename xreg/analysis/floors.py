"""Round-off floors: how far a trajectory moves when only rounding changes.

A pair of correct implementations can differ by more than the step-count tolerance of
:mod:`xreg.compare` when the trajectory itself amplifies round-off (a chaotic run). Two measurements
tell such a run from a bug, both made with one backend against itself:

* ``init_ulp_floor``: the initial parameters moved up by one float64 ulp (``init_ulps=1``);
* ``row_order_floor``: every batch summed in reverse row order (full batch only): the same
  mathematical gradient, rounded differently at every step, as another framework's reduction does.

A cross-framework gap within a small multiple of the larger floor is round-off, not a different rule.
"""

from __future__ import annotations

import numpy as np

from xreg import backends
from xreg.checks import XregInputError
from xreg.core.spec import Dataset, ExperimentSpec


def _gap(a, b) -> float:
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(np.abs(a.flat - b.flat)))


def init_ulp_floor(spec: ExperimentSpec, data: Dataset, backend: str = "torch") -> float:
    """Max |theta| gap between ``spec`` and the same run started one ulp away."""
    return _gap(backends.train(backend, spec, data), backends.train(backend, spec.replace(init_ulps=1), data))


def row_order_floor(spec: ExperimentSpec, data: Dataset, backend: str = "torch") -> float:
    """Max |theta| gap between ``spec`` and the same full-batch run with the training rows reversed."""
    if spec.batch_size is not None and spec.batch_size < data.n_train:
        raise XregInputError("row_order_floor needs a full-batch run: reversing rows would change the batches.")
    flipped = Dataset(data.name, data.X_train[::-1].copy(), data.y_train[::-1].copy(), data.X_test, data.y_test,
                      data.feature_names, data.target)  # fmt: skip
    return _gap(backends.train(backend, spec, data), backends.train(backend, spec, flipped))
