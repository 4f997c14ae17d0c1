"""Compare trajectories step by step, with a tolerance derived from the dtype and the step count.

Tolerance model
---------------
Two correct implementations of one update rule differ only by rounding. Each step computes the new
parameters with a handful of floating-point operations, each exact to half an ulp of its result, and
the operations of different libraries are ordered differently (fused multiply-adds, summation trees,
``w*(1-lr*lam)`` against ``w - lr*lam*w``). So each step adds a discrepancy of at most a few ulps of the
parameter scale, and in the worst case the discrepancies add up linearly over the steps. The match
tolerance after ``k`` steps is therefore::

    tol_k = C * eps(dtype) * k * S_k        C = 16

with ``eps`` the machine epsilon (2.2e-16 for float64, 1.2e-7 for float32) and ``S_k`` the parameter
scale, the largest ``|theta|`` seen by either run up to step ``k`` (at least ``eps``). A pair *matches*
when ``max_j |theta_a[k, j] - theta_b[k, j]| <= tol_k`` at every step; otherwise the first step where
it does not is its ``first_divergence_step``. In float64 over 1000 steps with ``S ~ 1`` this is
3.6e-12: the same-rule runs of the default problem differ by ~1e-16, and the smallest real difference
tested (``lam`` against ``lam*(1+1e-6)``) by ~1e-8, four orders of magnitude above it. The tolerance
is linear, not ``sqrt(k)``, because we bound, not estimate: a chaotic trajectory (one that amplifies a
1-ulp change of the initial point) can exceed it with no bug, and the tests show such cases against
the torch-vs-torch 1-ulp floor instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xreg.spec import Trajectory

TOLERANCE_FACTOR = 16.0


def eps(dtype: str) -> float:
    return float(np.finfo(np.dtype(dtype)).eps)


def tolerance(dtype: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-step tolerance ``C*eps*max(k,1)*S_k`` for parameter histories of shape (steps+1, p)."""
    e = eps(dtype)
    with np.errstate(invalid="ignore"):
        mag = np.fmax(np.nanmax(np.abs(a), axis=1, initial=0.0), np.nanmax(np.abs(b), axis=1, initial=0.0))
    scale = np.maximum(np.maximum.accumulate(np.nan_to_num(mag, nan=0.0, posinf=np.finfo(float).max)), e)
    k = np.maximum(np.arange(a.shape[0]), 1)
    return TOLERANCE_FACTOR * e * k * scale


@dataclass(frozen=True, eq=False)
class PairResult:
    a: str
    b: str
    max_abs_diff: float  # over all steps before either run diverged
    max_rel_diff: float  # max_abs_diff / parameter scale
    first_divergence_step: int | None  # first step past the tolerance (or where only one run diverged)
    final_tolerance: float
    verdict: str  # 'match' or 'mismatch'
    note: str  # divergence of either run, in words
    per_step: np.ndarray  # (steps+1,) max abs diff at each step


def compare_pair(a: Trajectory, b: Trajectory, labels: tuple[str, str] | None = None) -> PairResult:
    """Compare two runs of the same plan (same steps); the coarser of the two dtypes sets the tolerance.

    ``labels`` names the runs in the result (default: each trajectory's own label).
    """
    la, lb = labels or (a.label, b.label)
    if a.params.shape != b.params.shape:
        raise ValueError(f"Runs {a.label} and {b.label} have different shapes: {a.params.shape} vs {b.params.shape}.")
    dtype = "float32" if "float32" in (a.spec.dtype, b.spec.dtype) else "float64"
    pa, pb = a.params, b.params
    with np.errstate(invalid="ignore"):
        diff = np.max(np.abs(pa - pb), axis=1)
    tol = tolerance(dtype, pa, pb)
    # Steps where both runs are finite are compared; the first step where only one is not is a divergence.
    ends = [t.diverged_at for t in (a, b) if t.diverged_at is not None]
    last_finite = (min(ends) - 1) if ends else pa.shape[0] - 1
    over = np.flatnonzero(diff[: last_finite + 1] > tol[: last_finite + 1])
    first = int(over[0]) if over.size else None
    if first is None and a.diverged_at != b.diverged_at:
        first = min(ends)
    notes = [f"{name} diverged at step {t.diverged_at}" for name, t in ((la, a), (lb, b)) if t.diverged_at is not None]
    finite = diff[: last_finite + 1]
    max_abs = float(np.max(finite)) if finite.size else 0.0
    scale = float(tol[last_finite] / (TOLERANCE_FACTOR * eps(dtype) * max(last_finite, 1)))
    return PairResult(
        a=la,
        b=lb,
        max_abs_diff=max_abs,
        max_rel_diff=max_abs / scale,
        first_divergence_step=first,
        final_tolerance=float(tol[last_finite]),
        verdict="match" if first is None else "mismatch",
        note="; ".join(notes),
        per_step=diff,
    )


if __name__ == "__main__":
    import sys

    from xreg.cli import main

    sys.exit(main())
