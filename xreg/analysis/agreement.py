"""Compare trajectories step by step, with a tolerance derived from the dtype and the step count.

Tolerance model
---------------
Two correct implementations of one update rule differ only by rounding. Each step computes the new
parameters with a handful of floating-point operations, each exact to half an ulp of its result, and
the operations of different libraries are ordered differently (fused multiply-adds, summation trees,
``w*(1-lr*lam)`` against ``w - lr*lam*w``). So each step adds a discrepancy of at most a few ulps of the
scale of what that step handled: the new parameters (``|theta_j|``) and the update added to them
(``|theta_j - theta_{j-1}|``, which dominates when a momentum buffer or a large lr makes the steps big
and oscillating). In the worst case the discrepancies add up over the steps, so the match tolerance
after ``k`` steps is::

    tol_k = C * eps(dtype) * sum_{j=1..k} (|theta_j| + |theta_j - theta_{j-1}|)        C = 16

with ``eps`` the machine epsilon (2.2e-16 for float64, 1.2e-7 for float32) and ``|.|`` the largest
entry over both runs. A pair *matches* when ``max_j |theta_a[k, j] - theta_b[k, j]| <= tol_k`` at
every step; otherwise the first step where it does not is its ``first_divergence_step``. On the
default problem (float64, 1000 steps, ``|theta| ~ 0.7``) this is ~2.7e-12: the same-rule runs differ
by ~1e-16, the smallest real difference tested (``lam`` against ``lam*(1+1e-6)``) by ~1e-7, four
orders of magnitude above it. The bound is linear in ``k``, not ``sqrt(k)``, because it bounds
rather than estimates; a chaotic trajectory (one that amplifies round-off) can still exceed it with
no bug, and :mod:`xreg.floors` measures that case against torch's divergence from itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from xreg.core.spec import Trajectory

TOLERANCE_FACTOR = 16.0


def eps(dtype: str) -> float:
    if dtype == "bfloat16":  # numpy has no bfloat16: 8 significand bits
        return 2.0**-7
    return float(np.finfo(np.dtype(dtype)).eps)


def first_past(gaps: np.ndarray, tol: np.ndarray) -> int | None:
    """The first row whose gap is past the tolerance (a NaN gap counts as past), or None: the one rule every
    verdict, floor, diagnosis and CI assertion reads."""
    over = np.flatnonzero(~(np.asarray(gaps) <= tol))
    return int(over[0]) if over.size else None


def tolerance(dtype: str, a: np.ndarray, b: np.ndarray, steps_at: np.ndarray | None = None) -> np.ndarray:
    """Per-step tolerance ``C*eps*sum_{j<=k}(|theta_j| + |theta_j - theta_{j-1}|)`` (max norms over both runs)
    for flat parameter histories of shape (rows, p) (``Trajectory.flat``); row 0 (the shared start)
    gets ``C*eps*eps``. With ``steps_at`` (rows kept every K steps), a kept row's size counts for the K
    steps it stands for and its move from the previous kept row stands for theirs: an estimate of the sum
    over steps that were not kept (measured within -25%..+50% of the full sum on smooth, momentum and
    minibatch Adam runs)."""
    e = eps(dtype)
    big = np.finfo(float).max
    with np.errstate(invalid="ignore", over="ignore"):
        size = np.fmax(np.nanmax(np.abs(a), axis=1, initial=0.0), np.nanmax(np.abs(b), axis=1, initial=0.0))
        step = np.zeros_like(size)
        step[1:] = np.fmax(np.nanmax(np.abs(np.diff(a, axis=0)), axis=1, initial=0.0),
                           np.nanmax(np.abs(np.diff(b, axis=0)), axis=1, initial=0.0))  # fmt: skip
        if steps_at is not None:  # a kept row stands for K steps: K parameter sizes, and its net move
            size[1:] *= np.diff(np.asarray(steps_at, float))
        budget = np.nan_to_num(size + step, nan=0.0, posinf=big)
        budget[0] = 0.0
        total = np.cumsum(budget)
    return TOLERANCE_FACTOR * e * np.maximum(np.nan_to_num(total, posinf=big), e)


@dataclass(frozen=True, eq=False)
class PairResult:
    a: str
    b: str
    max_abs_diff: float  # over all steps before either run diverged
    max_rel_diff: float  # max_abs_diff / parameter scale
    first_divergence_step: int | None  # first (recorded) step past the tolerance (or where only one run diverged)
    final_tolerance: float
    verdict: str  # 'match', 'mismatch', or 'round-off (chaotic)' (set by xreg.analysis.triage)
    note: str  # divergence of either run, in words
    per_step: np.ndarray  # (rows,) max abs diff at each recorded row
    steps_at: np.ndarray  # (rows,) the step of each row
    tolerance: np.ndarray  # (rows,) the match tolerance at each recorded row
    same_rule: bool | None = None  # set by triage for a mismatch of two runs of one rule
    floor: Any = None  # the round-off floor (xreg.analysis.floors.Floor) a same-rule mismatch was judged against


def compare_pair(a: Trajectory, b: Trajectory, labels: tuple[str, str] | None = None) -> PairResult:
    """Compare two runs of the same plan (same steps); the coarser of the two dtypes sets the tolerance.

    ``labels`` names the runs in the result (default: each trajectory's own label).
    """
    la, lb = labels or (a.label, b.label)
    shapes_a = {n: p.shape for n, p in a.params.items()}
    shapes_b = {n: p.shape for n, p in b.params.items()}
    if shapes_a != shapes_b:
        raise ValueError(f"Runs {a.label} and {b.label} have different parameters: {shapes_a} vs {shapes_b}.")
    if not np.array_equal(a.steps_at, b.steps_at):
        raise ValueError(f"Runs {a.label} and {b.label} were recorded at different steps.")
    steps_at = a.steps_at
    dtype = "float32" if "float32" in (a.spec.dtype, b.spec.dtype) else "float64"
    pa, pb = a.flat, b.flat
    with np.errstate(invalid="ignore"):
        diff = np.max(np.abs(pa - pb), axis=1)
    tol = tolerance(dtype, pa, pb, steps_at)
    # Rows where both runs are finite are compared; the first row where only one is not is a divergence.
    ends = [int(np.searchsorted(steps_at, t.diverged_at)) for t in (a, b) if t.diverged_at is not None]
    last_finite = (min(ends) - 1) if ends else pa.shape[0] - 1
    row = first_past(diff[: last_finite + 1], tol[: last_finite + 1])
    first = int(steps_at[row]) if row is not None else None
    if first is None and a.diverged_at != b.diverged_at:
        first = int(steps_at[min(ends)])
    notes = [f"{name} diverged at step {t.diverged_at}" for name, t in ((la, a), (lb, b)) if t.diverged_at is not None]
    finite = diff[: last_finite + 1]
    max_abs = float(np.max(finite)) if finite.size else 0.0
    with np.errstate(invalid="ignore"):
        scale = float(max(np.nanmax(np.abs(pa[: last_finite + 1]), initial=0.0), np.nanmax(np.abs(pb[: last_finite + 1]), initial=0.0),
                          eps(dtype)))  # (no finite row: a run that diverged at its start)
    return PairResult(
        a=la,
        b=lb,
        max_abs_diff=max_abs,
        max_rel_diff=max_abs / scale,
        first_divergence_step=first,
        final_tolerance=float(tol[max(last_finite, 0)]),
        verdict="match" if first is None else "mismatch",
        note="; ".join(notes),
        per_step=diff,
        steps_at=steps_at,
        tolerance=tol,
    )

