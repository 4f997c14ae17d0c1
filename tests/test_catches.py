"""Issue 20, tests that catch what they claim: each pins a rule a plausible one-line bug would break and
today's suite let through (the triage's envelope and factor, the tolerance's symmetry, the trajectory
file's numeric check, table cells against the runs' own numbers, a fix's number, JSON fields, translate's
row counts)."""

import csv
import io
import json

import numpy as np
import pytest

from xreg import backends
from xreg.analysis import agreement, floors, triage
from xreg.cli import main
from xreg.core.spec import ExperimentSpec


def _floor(per_step):
    return floors.Floor("torch", None, float(np.max(per_step)), np.asarray(per_step, float), floors.CHAOTIC)


def test_the_floor_is_its_running_maximum_and_the_factor_is_ten():
    """A pair is judged against the floor's envelope (the running maximum), not the floor at the same step,
    with FLOOR_FACTOR = 10 (planted and caught: the per-step floor, a factor of 100)."""
    floor = _floor([0.0, 1e-3, 1e-9, 1e-9])  # rounding moved the run by 1e-3 at step 1, then less
    tol = np.full(4, 1e-15)
    assert np.array_equal(floor.envelope, [0.0, 1e-3, 1e-3, 1e-3])
    assert triage.within_floor(np.array([0.0, 5e-3, 5e-3, 9.9e-3]), floor, tol)  # past the per-step floor, within 10x the envelope
    assert not triage.within_floor(np.array([0.0, 5e-3, 5e-3, 1.1e-2]), floor, tol)  # 11x the envelope
    assert triage.FLOOR_FACTOR == 10.0
    assert triage.within_floor(np.array([0.0, 9e-15, 9e-15, 9e-15]), _floor([0, 0, 0, 0]), tol)  # tol stands in for a zero floor


def test_the_tolerance_is_symmetric_in_the_two_runs():
    """max over both runs of |theta_j| and |theta_j - theta_j-1|: swapping a and b changes nothing, and a run
    with larger parameters or larger moves raises it (planted: b's terms read from a)."""
    rng = np.random.default_rng(0)
    a = np.cumsum(rng.standard_normal((50, 3)) * 0.01, axis=0)
    b = 10 * a  # larger parameters and moves: b sets the tolerance
    t_ab, t_ba = agreement.tolerance("float64", a, b), agreement.tolerance("float64", b, a)
    np.testing.assert_array_equal(t_ab, t_ba)
    sizes = np.maximum(np.abs(a).max(axis=1), np.abs(b).max(axis=1))
    moves = np.zeros(50)
    moves[1:] = np.maximum(np.abs(np.diff(a, axis=0)).max(axis=1), np.abs(np.diff(b, axis=0)).max(axis=1))
    want = 16 * np.finfo(float).eps * np.cumsum(np.where(np.arange(50) == 0, 0.0, sizes + moves))
    np.testing.assert_allclose(t_ab[1:], want[1:], rtol=1e-12)  # the formula, by hand
    assert np.all(t_ab[1:] > agreement.tolerance("float64", a, a)[1:])


def test_a_trajectory_file_with_a_non_numeric_array_is_refused(tmp_path):
    from xreg.core.checks import XregInputError
    from xreg.io import trajfile
    from xreg.io.trajfile import RecordedRun

    with pytest.raises(XregInputError, match="an array is not numeric"):
        trajfile.check(RecordedRun({"w": np.array([["a", "b"], ["c", "d"]])}, None, None, None, {}))


def test_table_cells_are_each_runs_own_numbers(default_data, capsys):
    """Every cell of the CSV table is the run's own final loss, train and test accuracy and gap, from the
    backends run here directly (planted and caught: the train and test accuracy cells swapped)."""
    assert main(["--epochs", "30", "--lr", "0.5", "--format", "csv", "--quiet"]) == 1
    rows = {r[0]: r for r in csv.reader(io.StringIO(capsys.readouterr().out.split("\n\n")[0])) if r and r[0] != "run"}
    spec = ExperimentSpec(epochs=30, lr=0.5)
    ref = backends.train("torch", spec, default_data)
    for label, backend, convention in (("torch/coupled", "torch", "torch"), ("numpy/scratch", "numpy", "scratch")):
        t = backends.train(backend, spec.replace(convention=convention), default_data)
        row = rows[label]
        assert float(row[3]) == pytest.approx(t.train_loss[-1], rel=1e-5)
        assert float(row[4]) == pytest.approx(t.train_accuracy[-1], abs=1e-4) and float(row[5]) == pytest.approx(t.test_accuracy[-1], abs=1e-4)
        if label != "torch/coupled":
            assert float(row[6]) == pytest.approx(np.max(np.abs(t.flat - ref.flat)), rel=1e-3)
    assert abs(ref.train_accuracy[-1] - ref.test_accuracy[-1]) > 1e-3  # the two accuracies differ: a swap shows


def test_json_pair_fields_are_the_runs_gaps(default_data, capsys):
    assert main(["--epochs", "20", "--backend", "torch", "--backend", "numpy", "--convention", "torch", "--convention",
                 "scratch", "--json", "-", "--quiet"]) == 1  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    pair = next(p for p in doc["pairs"] if (p["a"], p["b"]) == ("torch/coupled", "numpy/scratch"))
    spec = ExperimentSpec(epochs=20)
    a, b = backends.train("torch", spec, default_data), backends.train("numpy", spec.replace(convention="scratch"), default_data)
    gap = float(np.max(np.abs(a.flat - b.flat)))
    scale = float(max(np.max(np.abs(a.flat)), np.max(np.abs(b.flat))))
    assert pair["max_abs_diff"] == pytest.approx(gap, rel=1e-9) and pair["max_rel_diff"] == pytest.approx(gap / scale, rel=1e-9)
    assert pair["first_divergence_step"] == 2 and pair["verdict"] == "mismatch"


def test_the_decoupled_lr_scaling_fix_number(default_data):
    """The number the decoupled-lr-scaling fix prints is B's rate over A's lr (checked against the loops'
    settings): s = 2e-3 with lr 1e-2 is weight_decay 0.2."""
    import jax.numpy as jnp
    import optax
    import torch

    from user_loops import optax_loop, problem, torch_loop
    from xreg.analysis import diagnose as dg

    prob = problem(default_data, rows=200)
    A = torch_loop(*prob, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1), 30)
    tx = optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(1e-2), optax.add_decayed_weights(-2e-3))
    d = dg.diagnose(A, optax_loop(*prob, tx, 30, lr=1e-2))
    assert d.cause in ("decay-scale", "decoupled-lr-scaling")
    assert "weight_decay=0.2" in d.fix["a"], d.fix  # 2e-3 / lr
    del jnp


@pytest.mark.parametrize("flag", ["--rows", "--batch-size"])
def test_translate_refuses_zero_rows(flag, capsys):
    assert main(["translate", "--from", "torch.sgd", "--weight-decay", "0.1", flag, "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "takes a whole number >= 1; got 0" in err
