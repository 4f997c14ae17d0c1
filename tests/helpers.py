"""Test helpers: run several backends on one spec and measure the largest parameter gap."""

from __future__ import annotations

import numpy as np

from xreg import backends
from xreg.spec import Dataset, ExperimentSpec, Trajectory


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
    assert a.params.shape == b.params.shape
    return float(np.max(np.abs(a.params - b.params)))
