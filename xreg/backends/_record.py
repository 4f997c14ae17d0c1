"""Assembling a :class:`Trajectory` from what a backend computed, the same way for every backend."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from xreg.spec import ExperimentSpec, Trajectory


def first_nonfinite_step(weight: np.ndarray, bias: np.ndarray) -> int | None:
    """First 1-based step whose parameters are not all finite (row 0 is the initial value)."""
    bad = ~(np.isfinite(weight).all(axis=1) & np.isfinite(bias).all(axis=1))
    hits = np.flatnonzero(bad)
    return int(hits[0]) if hits.size else None


def trajectory(
    backend: str,
    spec: ExperimentSpec,
    *,
    weight,
    bias,
    loss,
    penalty,
    train_loss,
    train_accuracy,
    test_accuracy,
    meta: Mapping[str, str],
) -> Trajectory:
    f64 = lambda a: np.array(a, dtype=np.float64)  # noqa: E731
    weight, bias = f64(weight), f64(bias).reshape(len(weight), -1)
    return Trajectory(
        backend=backend,
        spec=spec,
        weight=weight,
        bias=bias,
        loss=f64(loss),
        penalty=f64(penalty),
        train_loss=f64(train_loss),
        train_accuracy=f64(train_accuracy),
        test_accuracy=f64(test_accuracy),
        diverged_at=first_nonfinite_step(weight, bias),
        meta=dict(meta),
    )
