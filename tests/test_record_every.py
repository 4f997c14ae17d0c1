"""Issue 8: --record-every K keeps every K-th step (and the last) in every backend; what is kept is
exactly what a full recording holds at those steps, and the comparison works on the kept rows."""

import numpy as np
import pytest

from xreg import backends
from xreg.analysis.agreement import compare_pair
from xreg.cli import main
from xreg.core.spec import ExperimentSpec

SPEC = ExperimentSpec(optimizer="adam", lr=0.01, epochs=6, batch_size=300, shuffle=True, record_every=5)  # 24 steps


@pytest.fixture(scope="module")
def full(default_data):
    return backends.train("torch", SPEC.replace(record_every=1), default_data)


@pytest.mark.parametrize("backend", ["torch", "jax", "numpy"])
def test_kept_rows_are_the_full_recording_at_those_steps(backend, full, default_data):
    t = backends.train(backend, SPEC, default_data)
    assert t.steps_at.tolist() == [0, 5, 10, 15, 20, 24] and t.steps == 24
    assert t.flat.shape == (6, 5) and t.loss.shape == (5,)
    assert np.max(np.abs(t.flat - full.flat[t.steps_at])) < 1e-15  # bit-identical for torch, round-off otherwise
    assert np.max(np.abs(t.loss - full.loss[t.steps_at[:-1]])) < 1e-14
    epochs_kept = [e for e in range(6) if 4 * (e + 1) in (5, 10, 15, 20, 24)]  # 4 batches an epoch: epochs 5 (20), 6 (24)
    assert epochs_kept == [4, 5]
    assert np.flatnonzero(np.isfinite(t.train_loss)).tolist() == epochs_kept
    assert np.max(np.abs(t.train_loss[epochs_kept] - full.train_loss[epochs_kept])) < 1e-14


def test_a_rule_difference_is_found_at_the_first_kept_step_after_it(default_data):
    a = backends.train("torch", SPEC, default_data)
    b = backends.train("numpy", SPEC.replace(lam=SPEC.lam * (1 + 1e-6)), default_data)
    p = compare_pair(a, b)
    assert p.verdict == "mismatch" and p.first_divergence_step == 5  # differs from step 1 on: the first kept row
    assert compare_pair(a, backends.train("jax", SPEC, default_data)).verdict == "match"


def test_cli_record_every(capsys):
    assert main(["--epochs", "50", "--record-every", "7", "--backend", "torch", "--backend", "numpy"]) == 0
    assert "numpy/coupled" in capsys.readouterr().out
    assert main(["--epochs", "5", "--record-every", "0"]) == 2
    assert "The 'record_every' parameter must be an int in the range [1, inf]" in capsys.readouterr().err


def test_kept_row_tolerance_estimates_the_full_sum(full, default_data):
    """A kept row's size counts for the K steps it stands for: the estimate is the per-step sum at those
    steps within -40%..+60% (the start from zeros, where the parameters grow fastest, is the worst)."""
    from xreg.analysis.agreement import tolerance

    kept = backends.train("numpy", SPEC, default_data)
    every = tolerance("float64", full.flat, full.flat)[kept.steps_at]
    estimate = tolerance("float64", kept.flat, kept.flat, kept.steps_at)
    ratio = estimate[1:] / every[1:]
    assert np.all((0.6 < ratio) & (ratio < 1.6)) and ratio[-1] < 1.2, ratio
