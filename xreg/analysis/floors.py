"""Round-off floors: how far a trajectory moves when only rounding changes.

A pair of correct implementations can differ by more than the step-count tolerance of
:mod:`xreg.analysis.agreement` when the trajectory itself amplifies round-off (a chaotic run). Two
measurements tell such a run from a bug, both made with one backend against itself:

* the *row-order* floor: every batch's rows summed in reverse order (``reverse_batches``): the same
  batches, the same mathematical gradient, rounded differently at every step, as another framework's
  reduction does;
* the *one-ulp* floor: the initial parameters moved up by one ulp (``init_ulps=1``).

A third, the *kernel* floor, serves Muon where xreg's bfloat16 Newton-Schulz is not torch's kernel on
this CPU (``xreg.backends.torch.kernels``): the torch run against itself with the emulation's
Newton-Schulz (``ns_kernel='emulated'``), the one thing that differs between a torch run and an emulating
backend's.

:func:`measure` runs the ones asked for and keeps, at every step, the larger gap from the unperturbed run; its
running maximum is the envelope that :mod:`xreg.analysis.triage` holds a cross-framework gap against.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import numpy as np

from xreg import backends
from xreg.analysis.agreement import first_past, tolerance
from xreg.core import progress
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory

HOW = {"reverse_batches": "each batch's rows summed in reverse order", "init_ulps": "started one ulp away",
       "ns_kernel": "Newton-Schulz by xreg's bfloat16 emulation instead of torch's kernel"}
CHAOTIC = ("reverse_batches", "init_ulps")
PERTURB = {"reverse_batches": True, "init_ulps": 1, "ns_kernel": "emulated"}


@dataclass(frozen=True, eq=False)
class Floor:
    """How far ``backend`` parts from itself when only rounding changes."""

    backend: str
    onset: int | None  # first step past the match tolerance (None: the perturbed runs stay within it)
    size: float  # the largest gap over the run
    per_step: np.ndarray  # (rows,) the larger gap of the perturbed runs at each recorded row
    how: tuple[str, ...]  # the perturbations measured (keys of HOW)

    @property
    def envelope(self) -> np.ndarray:
        """Running maximum of ``per_step``: how far rounding alone has moved the run by each row."""
        return np.maximum.accumulate(np.nan_to_num(self.per_step, nan=np.inf))

    def describe(self) -> str:
        where = f"from step {self.onset}" if self.onset is not None else "within the tolerance"
        return f"{self.backend} against itself ({' / '.join(HOW[h] for h in self.how)}) parts {where}, by {self.size:.2e}"

    def to_json(self) -> dict:
        return {"backend": self.backend, "onset_step": self.onset, "size": self.size, "perturbations": list(self.how)}


def measure(run: Trajectory, data: Dataset, backend: str,
            on_run: Callable[[str, int], Callable[[int], None] | None] | None = None,
            perturbations: tuple[str, ...] = CHAOTIC) -> Floor:  # fmt: skip
    """The floor of ``run`` (a trajectory of ``backend``), from its spec re-run with each perturbation
    (keys of HOW: the chaotic floor by default; ``("ns_kernel",)``, the kernel floor of a torch Muon run);
    ``on_run(label, steps)`` may listen to each re-run's progress (:mod:`xreg.core.progress`)."""
    gaps = []
    for field in perturbations:
        how = HOW[field]
        with progress.reporting(on_run(f"{run.label} floor: {how}", int(run.steps_at[-1])) if on_run else None):
            other = backends.train(backend, run.spec.replace(**{field: PERTURB[field]}), data)
        with np.errstate(invalid="ignore"):
            gap = np.max(np.abs(run.flat - other.flat), axis=1)
        gap[0] = 0.0  # the one-ulp start differs at step 0 by construction
        gaps.append(gap)
    per_step = functools.reduce(np.fmax, gaps)
    tol = tolerance(run.spec.dtype, run.flat, run.flat, run.steps_at)
    row = first_past(per_step, tol)
    onset = int(run.steps_at[row]) if row is not None else None
    return Floor(backend, onset, float(np.nanmax(per_step)), per_step, tuple(perturbations))


def init_ulp_floor(spec: ExperimentSpec, data: Dataset, backend: str = "torch") -> float:
    """Max |theta| gap between ``spec`` and the same run started one ulp away."""
    return _gap(backends.train(backend, spec, data), backends.train(backend, spec.replace(init_ulps=1), data))


def row_order_floor(spec: ExperimentSpec, data: Dataset, backend: str = "torch") -> float:
    """Max |theta| gap between ``spec`` and the same run with every batch's rows summed in reverse order."""
    return _gap(backends.train(backend, spec, data), backends.train(backend, spec.replace(reverse_batches=True), data))


def _gap(a, b) -> float:
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(np.abs(a.flat - b.flat)))
