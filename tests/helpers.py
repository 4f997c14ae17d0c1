"""Test helpers: run several backends on one spec, measure the largest parameter gap, and check that
two runs agree on everything they record (parameters, batch loss, penalty, per-epoch metrics)."""

from __future__ import annotations

import numpy as np

from xreg import backends
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory


def train_all(spec: ExperimentSpec, data: Dataset, runs) -> dict[str, Trajectory]:
    """``runs`` is a list of (backend, convention[, port]) tuples; keys are 'backend/convention[/port]'."""
    out = {}
    for run in runs:
        backend, convention, *port = run
        s = spec.replace(convention=convention, port=port[0] if port else "exact")
        out["/".join(run)] = backends.train(backend, s, data)
    return out


def max_gap(a: Trajectory, b: Trajectory) -> float:
    """Largest |theta_a - theta_b| over every step and parameter."""
    assert a.flat.shape == b.flat.shape
    return float(np.max(np.abs(a.flat - b.flat)))


def assert_same_run(ref: Trajectory, run: Trajectory, params_atol: float = 1e-12, name: str = "") -> None:
    """``run`` reproduces ``ref``: parameters to ``params_atol``; the recorded batch loss, penalty and
    train loss to a relative 1e-10 or 1e-12 absolute (they are computed from those parameters; a batch fit
    to a loss of 1e-6 has logits of ~10 and an absolute round-off of ~1e-15); accuracies to one row
    (a prediction exactly on the boundary may round either way)."""
    assert max_gap(ref, run) <= params_atol, (name, max_gap(ref, run))
    for field in ("loss", "penalty", "train_loss"):
        np.testing.assert_allclose(getattr(run, field), getattr(ref, field), rtol=1e-10, atol=1e-12, err_msg=f"{name} {field}")
    for field in ("train_accuracy", "test_accuracy"):
        a, b = getattr(ref, field), getattr(run, field)
        assert np.array_equal(np.isnan(a), np.isnan(b)), (name, field)
        ok = ~np.isnan(a)
        assert np.all(np.abs(a[ok] - b[ok]) <= 0.01), (name, field)
