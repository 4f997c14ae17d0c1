"""Issue 9, ``xreg translate``: every printed equivalence is run on both sides. The torch code is
evaluated and trained (plain torch), the optax code is evaluated and trained (plain optax), and the
two trajectories must agree to round-off; likewise the scratch loop and the sum-loss settings."""

import fnmatch
import json

import numpy as np
import optax
import pytest
import torch

import xreg.twins  # noqa: F401 (the optax code's names: optax and xreg)
from cases import tagged
from user_loops import Both, optax_loop, problem, scratch_loop, torch_loop
from xreg.cli import main
from xreg.record import Recorder
from xreg.testing import assert_trajectories_close
from xreg.translate import translate

STEPS = 25


@pytest.fixture(scope="module")
def prob(default_data):
    return problem(default_data, rows=120)


def torch_names(run):
    """An optax run's parameters under torch's names and layout (kernel (d, 1) -> weight (1, d))."""
    return {"weight": run.params["dense.kernel"].transpose(0, 2, 1), "bias": run.params["dense.bias"]}


def run_torch(prob, code, **kw):
    def make(model):
        out = eval(code, {"torch": torch, "model": model, "fnmatch": fnmatch})
        return Both(out) if isinstance(out, list) else out

    return torch_loop(*prob, make, STEPS, groups=lambda m: m, **kw)


CASES = [(f"torch.{c.spec['optimizer']}", c.spec["lr"], c.spec["lam"], c.spec.get("options", {}), c.spec.get("no_decay", []))
         for c in tagged("translate")]  # every optimizer of the table (tests/cases.py)


@pytest.mark.parametrize("source, lr, wd, options, no_decay", CASES, ids=[c[0] for c in CASES])
def test_torch_code_and_optax_code_train_the_same(prob, source, lr, wd, options, no_decay):
    t = translate(source, lr=lr, weight_decay=wd, options=options, no_decay=no_decay)
    default = torch.get_default_dtype()
    if any("default dtype" in x for x in t.no_exact_equivalent):  # torch keeps mu_product, eta in it (the translation says so)
        torch.set_default_dtype(torch.float64)
    try:
        A = run_torch(prob, t.torch_code)
    finally:
        torch.set_default_dtype(default)
    B = optax_loop(*prob, eval(t.optax_code, {"optax": optax, "xreg": xreg}), STEPS)
    assert_trajectories_close(A, torch_names(B))
    moved = np.abs(A.params["bias"][-1] - A.params["bias"][0]).max()
    assert moved > 1e-4  # the runs went somewhere


def test_the_float32_scalars_of_torch_are_said():
    assert any("mu_product" in x for x in translate("torch.nadam").no_exact_equivalent)
    assert any("eta" in x for x in translate("torch.asgd", lr=0.05).no_exact_equivalent)


def test_every_optimizer_of_the_table_is_translated():
    from xreg import optimizers

    assert sorted(c[0].split(".")[1] for c in CASES) == sorted(optimizers.TORCH)


def test_the_alias_line_is_exact_only_where_it_says_so(prob):
    t = translate("torch.adamw", lr=1e-2, weight_decay=5e-2, no_decay=["bias"])
    code = t.decoupled_rate[t.decoupled_rate.index("optax.adamw("): t.decoupled_rate.index(" when")]
    A = run_torch(prob, t.torch_code)
    assert_trajectories_close(A, torch_names(optax_loop(*prob, eval(code, {"optax": optax, "xreg": xreg}), STEPS)))
    assert not translate("torch.adam", lr=1e-2, weight_decay=1e-2).optax_alias_exact
    assert t.optax_alias.startswith("adamw(0.01, 0.9, 0.999")  # the naive alias, not the decoupled line's
    assert "no exact equivalent" in translate("torch.adam", weight_decay=1e-2).decoupled_rate


def test_scratch_line_and_sum_loss_settings(prob):
    X, y, w0, b0 = prob
    n = len(y)
    t = translate("torch.sgd", lr=0.5, weight_decay=1e-3, rows=n)
    lam = float(t.scratch.split("lam = ")[1].split(" ")[0])
    assert lam == pytest.approx(1e-3 * n, rel=1e-12)
    assert_trajectories_close(run_torch(prob, t.torch_code), scratch_loop(X, y, w0, b0, 0.5, lam, STEPS))
    for source, options in (("torch.sgd", {"momentum": 0.9}), ("torch.adam", {}), ("torch.adagrad", {"initial_accumulator_value": 0.1})):
        t = translate(source, lr=1e-2, weight_decay=1e-2, options=options, rows=n)
        mean = run_torch(prob, t.torch_code)
        s = t.sum_loss_settings
        opt_cls = getattr(torch.optim, t.source.split(".")[1])
        summed = torch_loop(X, y, w0, b0, lambda p: opt_cls(p, **{**options, **s}), STEPS, reduction="sum")
        assert_trajectories_close(mean, summed)
    assert translate("torch.adadelta", weight_decay=1e-2, rows=n).sum_loss_settings is None  # said to have no equivalent


def test_cli_json_optax_code_is_one_expression(tmp_path, capsys):
    assert main(["translate", "--from", "torch.adam", "--lr", "1e-3", "--weight-decay", "1e-4", "--no-decay", "bias",
                 "--n", "1096", "--json", "-"]) == 0  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    tx = eval(doc["optax_code"], {"optax": optax, "xreg": xreg})
    assert isinstance(tx, optax.GradientTransformation)
    assert doc["sklearn"].startswith("LogisticRegression(C=9.12409)")
    assert main(["translate", "--from", "torch.adam", "--weight-decay", "1e-4"]) == 0
    out = capsys.readouterr().out
    assert "no exact equivalent" in out and "optax.chain(optax.add_decayed_weights(0.0001)" in out
    for argv, message in ((["--from", "torch.nope"], "--from takes torch.<optimizer>"),
                          (["--from", "torch.sgd", "--option", "momentum=2"], "momentum"),
                          (["--from", "torch.sgd", "--option", "decoupled_weight_decay=true"], "no decoupled_weight_decay"),
                          (["--from", "torch.sgd", "--n", "10", "--batch-size", "20"], "more than --rows"),
                          ([], "required")):  # fmt: skip
        assert main(["translate", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


def test_explain_takes_the_users_values(capsys):
    assert main(["explain", "rmsprop", "--lr", "0.003", "--weight-decay", "0.001", "--option", "alpha=0.9"]) == 0
    out = capsys.readouterr().out
    assert "torch.optim.RMSprop(lr=0.003, weight_decay=0.001, alpha=0.9" in out
    assert "scale_by_rms(decay=0.9, eps=1e-08, eps_in_sqrt=False), scale_by_learning_rate(0.003)" in out
    assert "decay=0.9 (torch alpha" not in out  # the user's alpha is optax's default: only eps differs


def test_the_decoupled_line_for_plain_sgd(prob):
    X, y, w0, b0 = prob
    t = translate("torch.sgd", lr=0.5, weight_decay=1e-2)
    assert t.decoupled_rate.startswith("w <- w - lr*0.01*w before the step: the same as the coupled decay")
    w, b = w0[0].copy(), b0.copy()
    rec = Recorder()
    rec.log({"weight": w[None, :], "bias": b})
    for _ in range(STEPS):  # the printed rule, in NumPy: decay first, then the data gradient step
        r = (1 / (1 + np.exp(-(X @ w + b[0]))) - y) / len(y)
        gw, gb = X.T @ r, np.array([r.sum()])
        w, b = w - 0.5 * 1e-2 * w, b - 0.5 * 1e-2 * b
        w, b = w - 0.5 * gw, b - 0.5 * gb
        rec.log({"weight": w[None, :], "bias": b})
    assert_trajectories_close(run_torch(prob, t.torch_code), rec.run())
