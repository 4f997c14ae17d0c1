"""Assertions for your CI, on chex: does my port follow the reference to round-off?

    from xreg.testing import assert_trajectories_close
    assert_trajectories_close("torch.npz", "optax.npz")   # files from xreg.record, or the runs themselves

The tolerance is xreg's (:mod:`xreg.analysis.compare`): at step k the largest parameter difference must
stay within ``16 * eps(dtype) * sum_{j<=k}(|theta_j| + |theta_j - theta_{j-1}|)``. A failure names the
first step past it, the parameter and the gap. (Naming the cause is ``xreg diagnose``'s job, still to
come.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import chex
import numpy as np

from xreg.analysis.compare import tolerance
from xreg.core.spec import Trajectory
from xreg.io import trajfile


def _params(run: Any) -> dict[str, np.ndarray]:
    if isinstance(run, (str, Path)):
        run = trajfile.load(run)
    if isinstance(run, (trajfile.RecordedRun, Trajectory)):
        return {n: np.asarray(p, np.float64) for n, p in run.params.items()}
    if isinstance(run, Mapping):
        return {str(n): np.asarray(p, np.float64) for n, p in run.items()}
    raise TypeError(f"Expected a trajectory file, a RecordedRun, a Trajectory or a name -> array mapping; got {type(run).__name__}.")


def assert_trajectories_close(a: Any, b: Any, *, dtype: str = "float64") -> None:
    """Raise ``AssertionError`` at the first step where ``a`` and ``b`` part by more than round-off.

    ``a``, ``b``: trajectory files, :class:`~xreg.io.trajfile.RecordedRun`, :class:`~xreg.core.spec.Trajectory`
    or ``{name: (T+1, *shape) array}``; the same names and shapes (chex checks them). ``dtype``: the
    precision the runs computed in (the tolerance scales with its epsilon).
    """
    pa, pb = _params(a), _params(b)
    if sorted(pa) != sorted(pb):
        raise AssertionError(f"The runs name different parameters: {sorted(pa)} and {sorted(pb)}.")
    pb = {n: pb[n] for n in pa}
    chex.assert_trees_all_equal_shapes(pa, pb)
    names = list(pa)
    rows = next(iter(pa.values())).shape[0]
    flat_a = np.concatenate([pa[n].reshape(rows, -1) for n in names], axis=1)
    flat_b = np.concatenate([pb[n].reshape(rows, -1) for n in names], axis=1)
    with np.errstate(invalid="ignore"):
        gaps = {n: np.max(np.abs(pa[n] - pb[n]).reshape(rows, -1), axis=1, initial=0.0) for n in names}
    worst = np.max(np.stack(list(gaps.values())), axis=0)
    tol = tolerance(dtype, flat_a, flat_b)
    over = np.flatnonzero(~(worst <= tol))  # NaN counts as over
    if over.size:
        k = int(over[0])
        name = max(names, key=lambda n: np.nan_to_num(gaps[n][k], nan=np.inf))
        raise AssertionError(
            f"The trajectories part at step {k}: parameter '{name}' differs by {gaps[name][k]:.3e} "
            f"(round-off tolerance {tol[k]:.3e}, {dtype}); up to step {k - 1} they agree."
        )
