"""Chaotic cases: where the step-count tolerance is too tight and the round-off floor is the bound.

Adaptive optimizers that reach the optimum enter a regime where the gradient is at round-off level and
the normalized step g/sqrt(v) is O(1): from then on the trajectory amplifies rounding, so two correct
implementations (and torch against itself) part ways. The floors of xreg.floors measure that
amplification with torch alone; a cross-framework gap there is round-off if it starts at the same step
as the floor's and has the floor's order of magnitude.
"""

import numpy as np
import pytest

from helpers import train_all
from xreg.analysis import agreement, floors
from xreg.core.spec import ExperimentSpec

pytestmark = pytest.mark.slow  # the full tier only (pytest -m 'not slow' is the fast one)


def _onset_and_gap(ref, other):
    """First step >= 1 past the tolerance (a one-ulp start differs at step 0 by construction), and the max gap."""
    p = agreement.compare_pair(ref, other)
    tol = agreement.tolerance("float64", ref.flat, other.flat)
    over = np.flatnonzero(p.per_step[1:] > tol[1:])
    return (int(over[0]) + 1 if over.size else None), p.max_abs_diff


def test_rmsprop_at_the_optimum_is_at_the_row_order_floor(default_data):
    spec = ExperimentSpec(optimizer="rmsprop", lr=0.01, lam=0.05, init="normal", seed=2)
    runs = train_all(spec, default_data, [("torch", "coupled"), ("jax", "coupled"), ("numpy", "coupled")])
    ref = runs["torch/coupled"]
    floor = floors.row_order_floor(spec, default_data)
    flipped_onset = None
    for name in ("jax/coupled", "numpy/coupled"):
        onset, gap = _onset_and_gap(ref, runs[name])
        assert onset is not None and onset > 300  # within the tolerance for the first 300+ steps
        assert np.max(agreement.compare_pair(ref, runs[name]).per_step[:301]) <= 1e-14
        assert floor / 10 <= gap <= 3 * floor, (name, gap, floor)  # the order of torch against itself
        flipped_onset = flipped_onset or onset
    # a one-ulp change of the start does not show it (the start is forgotten before the optimum) ...
    assert floors.init_ulp_floor(spec, default_data) < 1e-12
    # ... while the same run with the lr of test_optimizers stays exact
    slow = train_all(spec.replace(lr=1e-3), default_data, [("torch", "coupled"), ("jax", "coupled")])
    assert agreement.compare_pair(slow["torch/coupled"], slow["jax/coupled"]).verdict == "match"


def test_adadelta_default_lr_parts_ways_where_torch_parts_from_itself(default_data):
    """Adadelta at torch's default lr=1.0: every perturbation, a 1-ulp start or a reversed summation,
    starts to grow at the same step as the cross-framework gap."""
    spec = ExperimentSpec(optimizer="adadelta", lr=1.0, lam=0.05, init="normal", seed=2)
    runs = train_all(spec, default_data, [("torch", "coupled"), ("jax", "coupled"), ("numpy", "coupled")])
    ref = runs["torch/coupled"]
    ulp_run = train_all(spec.replace(init_ulps=1), default_data, [("torch", "coupled")])["torch/coupled"]
    floor_onset, floor_gap = _onset_and_gap(ref, ulp_run)
    assert floor_gap > 1e-6  # chaotic: one ulp at the start grows by ten orders of magnitude
    for name in ("jax/coupled", "numpy/coupled"):
        onset, gap = _onset_and_gap(ref, runs[name])
        assert abs(onset - floor_onset) <= 0.05 * floor_onset, (name, onset, floor_onset)
