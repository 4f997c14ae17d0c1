"""Issue 13: the holes mutation testing found. One-sided divergence in the pair comparison, the recorded
penalty against hand-worked values and across backends, the per-epoch metrics against a hand count,
and a rule difference just above round-off flagged at the step derived by hand.
(Schedules with several batches per epoch: tests/test_optimizers.py; metrics and penalty compared
across backends in every agreement test: helpers.assert_same_run.)"""

import math

import numpy as np
import pytest

from xreg import backends
from xreg.analysis import agreement
from xreg.core.spec import Dataset, ExperimentSpec, make_trajectory

SPEC = ExperimentSpec(epochs=6)


def made_up(values, backend="a"):
    """A one-parameter trajectory with the given parameter values per step (row 0 = start)."""
    values = np.asarray(values, float)
    n = len(values) - 1
    return make_trajectory(backend, SPEC, {"weight": values.reshape(-1, 1, 1)}, loss=np.zeros(n), penalty=np.zeros(n),
                           train_loss=np.zeros(6), train_accuracy=np.zeros(6), test_accuracy=np.zeros(6))  # fmt: skip


# ---- pair comparison on made-up trajectories -------------------------------------------------------------
def test_identical_runs_match():
    p = agreement.compare_pair(made_up([0, 1, 2, 3]), made_up([0, 1, 2, 3]))
    assert p.verdict == "match" and p.first_divergence_step is None and p.max_abs_diff == 0 and p.note == ""


def test_one_run_non_finite_at_step_k_is_a_mismatch_from_k():
    a, b = made_up([0, 1, 2, 3, 4]), made_up([0, 1, 2, math.inf, math.nan])
    assert (a.diverged_at, b.diverged_at) == (None, 3)
    p = agreement.compare_pair(a, b)
    assert p.verdict == "mismatch" and p.first_divergence_step == 3
    assert p.max_abs_diff == 0.0  # measured over the finite steps only
    assert "diverged at step 3" in p.note


def test_both_non_finite_at_the_same_step_match_with_a_note():
    p = agreement.compare_pair(made_up([0, 1, 2, math.inf]), made_up([0, 1, 2, math.nan]))
    assert p.verdict == "match" and p.first_divergence_step is None
    assert p.note.count("diverged at step 3") == 2


def test_the_run_that_diverges_first_sets_the_step():
    p = agreement.compare_pair(made_up([0, 1, 2, 3, math.inf, math.inf]), made_up([0, 1, math.inf, 3, 4, 5]))
    assert p.verdict == "mismatch" and p.first_divergence_step == 2


def test_a_gap_before_the_divergence_is_reported_at_its_own_step():
    p = agreement.compare_pair(made_up([0, 1, 2, 3, 4]), made_up([0, 1, 2.5, 3, math.inf]))
    assert p.first_divergence_step == 2 and p.max_abs_diff == 0.5


# ---- the recorded penalty --------------------------------------------------------------------------------
WORKED = Dataset("worked", np.array([[2.0], [4.0]]), np.array([7.0, 11.0]), np.zeros((0, 1)), np.zeros(0), ("x",))
WORKED_SPEC = ExperimentSpec(model="linear", lr=0.1, lam=1.0, epochs=1, init="constant", init_scale=1.0)
# w = b = 1, m = 2, lam = 1: c/2*(w^2 + b^2) with c = lam (torch, l2-loss), lam/m (scratch); decoupled
# records lam/2*||w||^2; none records 0.
PENALTY_AT_STEP_1 = {"torch": 1.0, "l2-loss": 1.0, "scratch": 0.5, "decoupled": 1.0, "none": 0.0}


@pytest.mark.parametrize("backend", backends.NAMES)
@pytest.mark.parametrize("convention", list(PENALTY_AT_STEP_1))
def test_penalty_at_step_one_by_hand(convention, backend):
    t = backends.train(backend, WORKED_SPEC.replace(convention=convention), WORKED)
    assert t.penalty[0] == pytest.approx(PENALTY_AT_STEP_1[convention], abs=1e-15)


@pytest.mark.parametrize("backend", backends.NAMES)
def test_penalty_counts_only_the_decayed_parameters_with_their_strengths(backend):
    """--no-decay bias: 1/2*1*w^2 = 0.5; a bias group of strength 0.5 adds 1/2*0.5*b^2 = 0.25."""
    t = backends.train(backend, WORKED_SPEC.replace(no_decay=("bias",)), WORKED)
    assert t.penalty[0] == pytest.approx(0.5, abs=1e-15)
    t = backends.train(backend, WORKED_SPEC.replace(group_decay=(("bias", 0.5),)), WORKED)
    assert t.penalty[0] == pytest.approx(0.75, abs=1e-15)


# ---- the per-epoch metrics against a hand count ------------------------------------------------------------
@pytest.mark.parametrize("backend", backends.NAMES)
def test_accuracy_and_train_loss_by_hand(backend, default_data):
    spec = ExperimentSpec(epochs=3, lr=0.5)
    t = backends.train(backend, spec, default_data)
    for epoch in range(3):
        params = t.at(epoch + 1)  # full batch: one step per epoch
        w, b = params["weight"][0], params["bias"][0]
        for X, y, got in ((default_data.X_train, default_data.y_train, t.train_accuracy),
                          (default_data.X_test, default_data.y_test, t.test_accuracy)):  # fmt: skip
            hits = sum(int((x @ w + b > 0) == (label == 1)) for x, label in zip(X, y))
            assert got[epoch] == hits / len(y), (epoch, got[epoch], hits)
        z = default_data.X_train @ w + b
        loss = np.mean(np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0) - default_data.y_train * z)
        assert t.train_loss[epoch] == pytest.approx(loss, rel=1e-13)
    assert t.train_accuracy[-1] != t.test_accuracy[-1]  # two different splits, two different counts


# ---- a rule difference just above round-off ------------------------------------------------------------------
def test_lam_times_one_plus_1e_9_is_flagged_at_step_2_by_hand(default_data):
    """SGD from w0 = 0: step 1 is -lr*g(0) in both runs (the decay multiplies w0 = 0), so they are equal.
    Step 2 adds lr*lam*w1 against lr*lam*(1 + d)*w1: the gap is lr*lam*d*max|w1| (g(w1) is the same).
    The tolerance at step 2 is 16*eps*(max|w1| + max|w1 - w0| + max|w2| + max|w2 - w1|): with d = 1e-9
    the gap is ~350 times the tolerance, so a tolerance factor 350 times looser would miss it."""
    d = 1e-9
    spec = ExperimentSpec(epochs=1000)
    a = backends.train("numpy", spec, default_data)
    b = backends.train("numpy", spec.replace(lam=spec.lam * (1 + d)), default_data)
    w = a.flat
    gap_2 = spec.lr * spec.lam * d * np.max(np.abs(w[1]))
    tol_2 = 16 * np.finfo(float).eps * (np.max(np.abs(w[1])) * 2 + np.max(np.abs(w[2])) + np.max(np.abs(w[2] - w[1])))
    p = agreement.compare_pair(a, b)
    assert p.per_step[1] == 0.0
    assert p.per_step[2] == pytest.approx(gap_2, rel=1e-4)
    assert agreement.tolerance("float64", a.flat, b.flat)[2] == pytest.approx(tol_2, rel=1e-9)
    assert p.verdict == "mismatch" and p.first_divergence_step == 2
    assert 100 < gap_2 / tol_2 < 1000
