"""Gradient clipping: torch's clip_grad_norm_ (p = 2, 3, inf; global or per parameter) and clip_grad_value_,
each against its formula on a known gradient and in torch, JAX and NumPy runs; the naive optax forms
(clip_by_global_norm's missing 1e-6, the decay before the clipping), each alone a named mismatch."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from tests.helpers import assert_same_run, max_gap
from xreg import backends
from xreg.backends.jax import twins
from xreg.cli import main
from xreg.core.spec import ExperimentSpec

G = {"a": np.array([[3.0, -4.0], [1.0, 2.0]]), "b": np.array([-12.0, 0.5])}  # per-tensor 2-norms sqrt(30), sqrt(144.25)


def _formula(p, M, per_parameter=False):
    """The clipped gradient by hand: each group scaled by min(1, M/(||g||_p + 1e-6))."""
    def norm(vs):
        flat = np.concatenate([v.ravel() for v in vs])
        return np.max(np.abs(flat)) if math.isinf(p) else np.sum(np.abs(flat) ** p) ** (1 / p)

    groups = [[k] for k in G] if per_parameter else [list(G)]
    out = {}
    for ks in groups:
        coef = min(1.0, M / (norm([G[k] for k in ks]) + 1e-6))
        out.update({k: G[k] * coef for k in ks})
    return out


@pytest.mark.parametrize("p, M, per_parameter", [(2.0, 1.0, False), (math.inf, 2.0, False), (3.0, 5.0, False), (2.0, 3.0, True),
                                                 (2.0, 100.0, False)])  # fmt: skip
def test_torch_clip_grad_norm_is_the_formula_in_torch_and_in_the_twin(p, M, per_parameter):
    want = _formula(p, M, per_parameter)
    params = {k: torch.nn.Parameter(torch.zeros(v.shape, dtype=torch.float64)) for k, v in G.items()}
    for k, t in params.items():
        t.grad = torch.tensor(G[k])
    for ps in ([t] for t in params.values()) if per_parameter else [list(params.values())]:
        torch.nn.utils.clip_grad_norm_(ps, M, norm_type=p, foreach=False)
    with jax.enable_x64(True):
        tx = twins.torch_clip_grad_norm(M, p, per_parameter)
        got, _ = tx.update({k: jnp.asarray(v) for k, v in G.items()}, tx.init(G))
    for k in G:
        np.testing.assert_allclose(params[k].grad.numpy(), want[k], rtol=1e-15)
        np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-15)
    if M == 100.0:  # under the threshold: torch's gradient is untouched
        np.testing.assert_array_equal(params["a"].grad.numpy(), G["a"])


CLIPS = [
    ("norm-2", {"clip_norm": 0.01}),
    ("norm-inf", {"clip_norm": 0.005, "clip_norm_type": math.inf}),
    ("norm-3", {"clip_norm": 0.01, "clip_norm_type": 3.0}),
    ("per-parameter", {"clip_norm": 0.01, "clip_per_parameter": True}),
    ("value", {"clip_value": 0.002}),
]  # fmt: skip


@pytest.mark.parametrize("optimizer, convention, options", [("sgd", "coupled", {"momentum": 0.9}),
                                                            pytest.param("adamw", "decoupled", {}, marks=pytest.mark.slow)],
                         ids=["sgd-momentum", "adamw"])  # fmt: skip
@pytest.mark.parametrize("name, clip", CLIPS, ids=[c for c, _ in CLIPS])
def test_backends_agree_on_every_clipping(name, clip, optimizer, convention, options, default_data):
    if optimizer == "adamw" and name == "value":  # 0.002 clamps elements of Adam's normalized steps near the edge: chaotic
        clip = {"clip_value": 0.02}  # (xreg calls that pair round-off, as torch against itself); 0.02 still clamps
    spec = ExperimentSpec(optimizer=optimizer, convention=convention, options=options, lr=0.05, lam=0.01, epochs=30,
                          batch_size=110, shuffle=True, **clip)  # fmt: skip
    ref = backends.train("torch", spec, default_data)
    for b in ("jax", "numpy"):
        assert_same_run(ref, backends.train(b, spec, default_data), 1e-12, f"{b} {name}")
    unclipped = backends.train("numpy", spec.replace(clip_norm=None, clip_value=None, clip_norm_type=2.0, clip_per_parameter=False), default_data)
    assert max_gap(ref, unclipped) > 1e-3  # the clipping acts on this run


NAIVE = [
    ("clip-eps", ["--clip-norm", "0.01"]),
    ("clip-order", ["--clip-norm", "0.01", "--lam", "0.01"]),
    ("clip-order", ["--clip-value", "0.002", "--lam", "0.01"]),
]  # fmt: skip


@pytest.mark.parametrize("code, argv", NAIVE, ids=["clip-eps", "clip-order-norm", "clip-order-value"])
def test_each_naive_clipping_alone_is_a_named_mismatch(code, argv, capsys):
    # SGD with momentum: optax.sgd is torch's rule and the plain naive port clips as torch does
    base = ["--momentum", "0.9", "--epochs", "30", "--batch-size", "110", "--backend", "torch", "--backend", "jax"]
    assert main(base + (argv if "--lam" in argv else argv + ["--lam", "0"]) + ["--naive"]) == 0  # clipped, and exact
    assert "jax/coupled/naive: the stock optax alias is exact here" in capsys.readouterr().out
    assert main(base + (argv if "--lam" in argv else argv + ["--lam", "0"]) + ["--naive-clip", code]) == 1
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("jax/coupled/naive"))
    assert "mismatch from step" in row, out
    assert f"jax/coupled/naive: {code}: " in out, out



def test_the_naive_clip_order_is_a_torch_loop_that_decays_before_clipping(default_data):
    # the other order, written as a torch user writes it: p.grad += lam*p, then clip_grad_norm_, then step()
    spec = ExperimentSpec(optimizer="sgd", options={"momentum": 0.9}, lr=0.05, lam=0.05, epochs=40, clip_norm=0.01)
    naive = backends.train("jax", spec.replace(port="naive", naive_clip=("clip-order",)), default_data)
    X, y = (torch.tensor(a, dtype=torch.float64) for a in (default_data.X_train, default_data.y_train))
    model = torch.nn.Linear(X.shape[1], 1, dtype=torch.float64)
    torch.nn.init.zeros_(model.weight), torch.nn.init.zeros_(model.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rows = [np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])]
    for _ in range(40):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(X)[:, 0], y).backward()
        with torch.no_grad():
            for p in model.parameters():
                p.grad.add_(p, alpha=0.05)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        opt.step()
        rows.append(np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]))
    assert np.max(np.abs(naive.flat - np.array(rows))) <= 1e-12


def test_a_term_before_the_clipping_is_not_called_torchs_weight_decay(capsys):
    # l2-loss and scratch enter before clip_grad_norm_ and are clipped with the gradient: no weight_decay reproduces them
    assert main(["--clip-norm", "0.1", "--model", "softmax", "--epochs", "30", "--quiet"]) == 1
    out = capsys.readouterr().out
    why = out[out.index("why runs differ"):]
    assert "jax/l2-loss: the l2-loss term enters before the clipping and is clipped with the gradient" in why, out
    assert "reproduces the reference" not in why, out


# ---- error_if_nonfinite: torch raises at a step whose total norm is nan or inf; the run stops there ---------------
@pytest.mark.parametrize("kw", [{}, {"clip_per_parameter": True}], ids=["global", "per-parameter"])
def test_error_if_nonfinite_stops_every_backend_where_the_norm_overflows(kw, default_data):
    # a scratch decay lam*w/m of ~1e158 is a finite gradient whose squares overflow: ||g||_2 = inf at step 1.
    # torch without the flag scales by M/(inf + 1e-6) = 0 and goes on, its parameters frozen at the start
    spec = ExperimentSpec(optimizer="sgd", lr=0.01, epochs=2, batch_size=110, init="constant", init_scale=1e100, lam=1e60,
                          convention="scratch", clip_norm=1.0, clip_error_if_nonfinite=True, **kw)  # fmt: skip
    with torch.no_grad():  # the premise, in torch itself: clip_grad_norm_ raises on this gradient
        g = torch.full((4,), 1e60 * 1e100 / 110, dtype=torch.float64, requires_grad=False)
        p = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
        p.grad = g
        with pytest.raises(RuntimeError, match="non-finite"):
            torch.nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    runs = {b: backends.train(b, spec, default_data) for b in ("torch", "numpy", "jax")}
    for b, run in runs.items():
        assert np.array_equal(run.flat[0], runs["torch"].flat[0]) and np.all(np.isfinite(run.flat[0])), b
        assert not np.any(np.isfinite(run.flat[1:]).all(axis=1)), b  # nothing after the stop
    assert runs["torch"].meta["stopped"].startswith("step 1: ") and runs["numpy"].meta["stopped"] == runs["torch"].meta["stopped"]
    going = backends.train("torch", spec.replace(clip_error_if_nonfinite=False), default_data)
    assert "stopped" not in going.meta and np.all(going.flat == going.flat[0])  # zero updates, to the end


def test_error_if_nonfinite_changes_nothing_where_the_norm_is_finite(default_data):
    spec = ExperimentSpec(optimizer="adam", lr=0.01, epochs=4, batch_size=110, clip_norm=0.05, clip_error_if_nonfinite=True)
    ref = backends.train("torch", spec.replace(clip_error_if_nonfinite=False), default_data)
    for b in ("torch", "numpy", "jax"):
        assert max_gap(ref, backends.train(b, spec, default_data)) <= 1e-12, b


def test_runs_that_diverge_at_their_start_are_compared_and_have_no_metrics(capsys):
    # initial weights of 1e250: the first loss overflows; every run diverged at step 0 (exit 1), none has an accuracy
    assert main(["--init", "constant", "--init-scale", "1e250", "--epochs", "1", "--backend", "torch", "--backend", "numpy",
                 "--backend", "jax"]) == 1  # fmt: skip
    rows = [ln.split() for ln in capsys.readouterr().out.splitlines() if ln.startswith(("torch/", "numpy/", "jax/"))]
    assert len(rows) == 3 and all(r[1:4] == ["-", "-", "-"] for r in rows), rows
