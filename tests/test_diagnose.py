"""Issue 9, ``xreg diagnose A.npz B.npz``: pairs recorded from plain user loops (torch, optax, a NumPy
scratch loop; tests/user_loops.py, never xreg's backends) each get the cause that made them differ.

Expected values come from the loops' own settings (the coefficient ratio lam/m is 1/rows, the sum loss is
rows x the mean, the decoupled rate is optax's weight_decay), and each printed fix is applied to the
loop and re-run: the fixed pair must then agree to round-off (xreg.testing)."""

import json

import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from user_loops import optax_loop, problem, scratch_loop, torch_loop
from xreg.analysis import diagnose as dg
from xreg.cli import main
from xreg.io import trajfile
from xreg.testing import assert_trajectories_close

STEPS = 30
ROWS = 200


@pytest.fixture(scope="module")
def prob(default_data):
    return problem(default_data, rows=ROWS)


def _torch(prob, make, **kw):
    X, y, w0, b0 = prob
    return torch_loop(X, y, w0, b0, make, kw.pop("steps", STEPS), **kw)


def test_adam_weight_decay_vs_optax_adamw(prob):
    A = _torch(prob, lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2))
    B = optax_loop(*prob, optax.adamw(1e-2, weight_decay=1e-2), STEPS, lr=1e-2)
    d = dg.diagnose(A, B)
    assert (d.first_divergence_step, d.stage, d.cause) == (1, "update", "coupled-vs-decoupled")
    assert d.alignment == ["weight <-> dense.kernel (by initial value, transposed)", "bias <-> dense.bias (by initial value)"]
    assert d.ranking[0]["number"] == 1.0  # the decoupled rate is optax's weight_decay, the same 1e-2
    assert "torch.optim.AdamW(..., weight_decay=0.01)" in d.fix["a"]
    fixed = _torch(prob, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2))  # the fix on A's side, re-run
    assert_trajectories_close(fixed, {"weight": B.params["dense.kernel"].transpose(0, 2, 1), "bias": B.params["dense.bias"]})
    assert dg.diagnose(fixed, B).first_divergence_step is None


def test_torch_sgd_vs_the_scratch_loop(prob):
    lam = 0.1
    A = _torch(prob, lambda p: torch.optim.SGD(p, lr=0.5, weight_decay=lam))
    B = scratch_loop(*prob, 0.5, lam, STEPS)
    d = dg.diagnose(A, B)
    assert (d.stage, d.cause) == ("update", "decay-scale")
    assert d.ranking[0]["number"] == 1 / ROWS  # lam vs lam/m, m = the rows of the full batch
    assert d.fix["a"].startswith(f"weight_decay={lam / ROWS:g}") and f"lam = {lam * ROWS:g}" in d.fix["b"]
    fixed_torch = _torch(prob, lambda p: torch.optim.SGD(p, lr=0.5, weight_decay=lam / ROWS))
    fixed_scratch = scratch_loop(*prob, 0.5, lam * ROWS, STEPS)
    assert_trajectories_close(fixed_torch, B)
    assert_trajectories_close(A, fixed_scratch)


def test_adamw_with_and_without_the_bias_excluded(prob):
    groups = lambda m: [{"params": [m.weight]}, {"params": [m.bias], "weight_decay": 0.0}]  # noqa: E731
    A = _torch(prob, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1), groups=groups)
    B = _torch(prob, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1))
    d = dg.diagnose(A, B)
    assert (d.stage, d.cause) == ("update", "bias-decay") and d.ranking[0]["change"] == "decay bias too (0.1)"
    assert d.base == "a" and "bias: 0" in d.base_rule


def test_torch_rmsprop_vs_optax_rmsprop_defaults(prob):
    A = _torch(prob, lambda p: torch.optim.RMSprop(p, lr=1e-3))
    B = optax_loop(*prob, optax.rmsprop(1e-3), STEPS, lr=1e-3)
    d = dg.diagnose(A, B)
    assert (d.stage, d.cause) == ("update", "optimizer-defaults")
    assert d.ranking[0]["change"].startswith("optax.rmsprop defaults: decay=0.9 and eps inside the root")
    assert [r["reproduces"] for r in d.ranking].count(True) == 1  # neither difference alone reproduces B
    fixed = optax_loop(*prob, optax.rmsprop(1e-3, decay=0.99, eps=1e-8, eps_in_sqrt=False), STEPS, lr=1e-3)
    assert "alpha=0.99" in d.fix["b"] and "eps_in_sqrt=False" in d.fix["b"]
    assert dg.diagnose(A, fixed).first_divergence_step is None


def test_a_sum_loss_against_a_mean_loss(prob):
    A = _torch(prob, lambda p: torch.optim.SGD(p, lr=0.01, weight_decay=0.01))
    B = _torch(prob, lambda p: torch.optim.SGD(p, lr=0.01, weight_decay=0.01), reduction="sum")
    d = dg.diagnose(A, B)
    assert (d.first_divergence_step, d.stage, d.cause) == (1, "gradient", "loss-scale")
    assert "200x A's in every parameter" in d.evidence and "divide the loss by 200" in d.fix["b"]


def test_a_schedule_stepped_per_epoch_against_per_step(prob):
    sched = lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)  # noqa: E731
    make = lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9)  # noqa: E731
    A = _torch(prob, make, batch=50, sched=sched)  # 4 batches an epoch
    B = _torch(prob, make, batch=50, sched=sched, per_epoch=False)
    d = dg.diagnose(A, B)
    assert (d.first_divergence_step, d.stage, d.cause) == (2, "update", "lr-schedule")
    assert "A's lr changes every 4 steps, B's every 1" in d.evidence
    assert "once per epoch" in d.fix["b"] and "once per batch" in d.fix["a"]


def test_a_chaotic_rmsprop_pair_is_round_off(prob):
    """torch RMSprop and its exact optax form, float32, lr large for alpha=0.5: the same rule, and a gap
    that outgrows the tolerance anyway."""
    A = _torch(prob, lambda p: torch.optim.RMSprop(p, lr=0.03, alpha=0.5), steps=60, dtype="float32")
    B = optax_loop(*prob, optax.rmsprop(0.03, decay=0.5, eps=1e-8, eps_in_sqrt=False), 60, lr=0.03, dtype="float32")
    d = dg.diagnose(A, B)
    assert d.dtype == "float32" and d.first_divergence_step is not None
    assert (d.stage, d.cause) == ("update", "round-off") and not d.differs
    with pytest.raises(AssertionError, match="The trajectories part at step"):
        assert_trajectories_close(A, {"weight": B.params["dense.kernel"].transpose(0, 2, 1), "bias": B.params["dense.bias"]}, dtype="float32")


def test_a_wrong_sign_on_the_bias_gradient_is_unexplained_at_the_gradient(prob):
    A = _torch(prob, lambda p: torch.optim.SGD(p, lr=0.5, weight_decay=0.1 / ROWS))
    B = scratch_loop(*prob, 0.5, 0.1, STEPS, bias_sign=-1.0)
    d = dg.diagnose(A, B)
    assert (d.first_divergence_step, d.stage, d.cause) == (1, "gradient", "unexplained")
    assert "weight: 1, bias: -1" in d.evidence and d.fix == {}
    assert dg.diagnose(A, scratch_loop(*prob, 0.5, 0.1, STEPS)).first_divergence_step is None  # the sign was all


def test_cli_text_json_exit_codes_and_bad_input(prob, tmp_path, capsys):
    A = _torch(prob, lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-2))
    B = optax_loop(*prob, optax.adamw(1e-2, weight_decay=1e-2), STEPS, lr=1e-2)
    trajfile.save(tmp_path / "a.npz", A)
    trajfile.save(tmp_path / "b.npz", B)
    assert main(["diagnose", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--json", str(tmp_path / "d.json")]) == 1
    out = capsys.readouterr().out
    assert "cause: coupled-vs-decoupled" in out and "first divergence: step 1" in out
    doc = json.loads((tmp_path / "d.json").read_text())
    assert {k: doc[k] for k in ("first_divergence_step", "stage", "cause")} == {"first_divergence_step": 1, "stage": "update", "cause": "coupled-vs-decoupled"}
    assert set(doc["fix"]) == {"a", "b"} and doc["evidence"].startswith("first divergence at step 1")
    assert main(["diagnose", str(tmp_path / "a.npz"), str(tmp_path / "a.npz")]) == 0  # a run against itself
    for argv, message in (
        ([str(tmp_path / "a.npz")], "takes two trajectory files"),
        ([str(tmp_path / "a.npz"), str(tmp_path / "none.npz")], "does not exist"),
        ([str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--map", "weight"], "--map takes A_NAME=B_NAME"),
        ([str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--map", "weight=dense.nope"], "not in B"),
        ([str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--json", str(tmp_path / "d.json")], "exists"),
        ([str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--dtype", "float8"], "--dtype must be one of"),
    ):
        assert main(["diagnose", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (argv, err)


def test_alignment_by_map_and_when_it_cannot_be_made():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 2, 2))
    a = trajfile.RecordedRun({"w": w, "v": w.copy()})
    b = trajfile.RecordedRun({"p": w.transpose(0, 2, 1), "q": w.copy()})
    with pytest.raises(Exception, match="Name the pairs with --map"):
        dg.align(trajfile.RecordedRun({"w": np.zeros((3, 2)), "v": np.zeros((3, 2))}), trajfile.RecordedRun({"p": np.zeros((3, 2)), "q": np.zeros((3, 2))}))
    al = dg.align(a, b, {"w": "p"})
    assert al.b_name == {"w": "p", "v": "q"} and al.transposed == {"w"}  # square: transposed by the initial value
    with pytest.raises(Exception, match="different shapes"):
        dg.align(trajfile.RecordedRun({"w": np.zeros((3, 2))}), trajfile.RecordedRun({"w": np.zeros((3, 3))}))


def test_a_decoupled_decay_not_multiplied_by_lr(prob):
    """torch AdamW (w <- w - lr_t*wd*w) under a per-step schedule, against a chain that decays by a fixed
    s*w after the scheduled lr (with a constant lr the two are the same arithmetic: a decay-scale)."""
    sched = lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.9)  # noqa: E731
    A = _torch(prob, lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1), sched=sched, per_epoch=False)
    schedule = lambda count: 1e-2 * jnp.power(0.9, count.astype(jnp.float64))  # noqa: E731 (optax.exponential_decay is float32)
    tx = optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(schedule), optax.add_decayed_weights(-2e-3))
    d = dg.diagnose(A, optax_loop(*prob, tx, STEPS, lr=lambda k: 1e-2 * 0.9**k))
    assert (d.stage, d.cause) == ("update", "decoupled-lr-scaling")
    assert d.ranking[0]["number"] == pytest.approx(2e-3 / 0.1, rel=1e-9)  # B's s over A's wd


def test_sgd_momentum_with_and_without_dampening(prob):
    A = _torch(prob, lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.5, weight_decay=1e-3))
    B = optax_loop(*prob, optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(0.1, momentum=0.9)), STEPS, lr=0.1)
    d = dg.diagnose(A, B)
    assert (d.stage, d.cause) == ("update", "momentum-dampening") and d.fix["a"] == "dampening=0"


@pytest.mark.parametrize("name, make, tx", [
    ("adagrad", lambda p: torch.optim.Adagrad(p, lr=0.1), optax.adagrad(0.1)),
    ("nadam", lambda p: torch.optim.NAdam(p, lr=1e-2), optax.nadam(1e-2)),
])  # fmt: skip
def test_other_optax_defaults(prob, name, make, tx):
    d = dg.diagnose(_torch(prob, make), optax_loop(*prob, tx, STEPS))
    assert (d.stage, d.cause) == ("update", "optimizer-defaults") and d.ranking[0]["change"].startswith(f"optax.{name}")
