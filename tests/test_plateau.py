"""ReduceLROnPlateau, stepped once per epoch with the epoch's recorded loss: xreg's twin and its printed jnp code
against the real torch class on loss sequences (a hand-derived one among them), the three backends on runs whose
lr is cut several times (torch's own class replayed on torch's recorded losses says so), the naive
optax.contrib.reduce_on_plateau port (one call early: torch with patience - 1), a resume, and the refusals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers import assert_same_run, max_gap
from xreg import backends, schedules
from xreg.cli import main
from xreg.core.spec import ExperimentSpec
from xreg.schedules import Context

NAME = "ReduceLROnPlateau"
LR = 0.05


def _options(options, calls=40):
    return dict(schedules.for_run(NAME, schedules.resolve(NAME, options), Context(calls, 1, "epoch", LR)))


def torch_lrs(o, losses, lr=LR):
    """The lr after each ``scheduler.step(loss)`` of torch's real class on a real optimizer."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))], lr=lr)
    sched = schedules.torch_scheduler(NAME, o, opt)
    out = []
    for v in losses:
        opt.step()
        sched.step(float(v))
        out.append(opt.param_groups[0]["lr"])
    return out


def twin_lrs(o, losses, lr=LR):
    twin = schedules.make_twin(NAME, o, lr)
    out = []
    for v in losses:
        twin.step(v)
        out.append(twin.lr)
    return out


def code_lrs(o, losses, naive=(), lr=LR):
    """The printed optax code (exact: xreg's jnp twin; naive: optax.contrib.reduce_on_plateau) stepped once per loss, jitted."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        fns = schedules.defined(schedules.code(NAME, o, Context(len(losses), 1, "epoch", lr), naive), jnp.asarray(lr))

        def body(state, loss):
            state = fns["plateau_step"](state, loss)
            return state, fns["plateau_lr"](state)

        _, lrs = jax.jit(lambda ls: jax.lax.scan(body, fns["plateau_init"](jnp.asarray(lr)), ls))(jnp.asarray(losses, jnp.float64))
        return [float(v) for v in lrs]


RNG = np.random.default_rng(0)
NOISY = list(np.cumsum(RNG.normal(-0.002, 0.01, 120)) + 1.0)  # drifts down with plateaus and bumps
FLAT = [1.0] * 60
SEQUENCES = {
    "noisy": NOISY,
    "flat": FLAT,
    "nan": [1.0, 0.9, math.nan, 0.95, 0.95, 0.95, 0.8, math.nan, 0.8, 0.8, 0.8, 0.8, 0.7] * 3,  # nan < best is False: a bad epoch
    "ties": [1.0, 0.9999, 0.99990001, 0.9998, 0.9998, 0.9998, 0.9998] * 8,  # on the threshold's edge
}
OPTIONS = [
    {"patience": 2, "factor": 0.5, "threshold": 0.01},
    {"patience": 0, "factor": 0.3, "threshold": 1e-3, "threshold_mode": "abs", "cooldown": 2, "min_lr": 0.002},
    {"patience": 3, "factor": 0.9, "cooldown": 1, "min_lr": 0.03},  # min_lr reached: old - new <= eps keeps the lr
    {"patience": 1, "factor": 0.5, "eps": 0.004},  # eps bites: a cut of 0.003125 or less is not made
]


@pytest.mark.parametrize("options", OPTIONS, ids=[f"options-{i}" for i in range(len(OPTIONS))])
@pytest.mark.parametrize("seq", SEQUENCES, ids=list(SEQUENCES))
def test_twin_and_printed_code_are_torchs_class(options, seq):
    o = _options(options)
    losses = SEQUENCES[seq]
    expected = torch_lrs(o, losses)
    assert twin_lrs(o, losses) == expected  # the NumPy backend's twin: torch's arithmetic, bit for bit
    assert code_lrs(o, losses) == expected  # the jnp twin the JAX backend carries (and xreg translate prints)
    if seq in ("noisy", "flat"):
        assert len(set(expected)) > 2, expected  # the case cuts the lr more than once


def test_torchs_class_on_a_hand_derived_sequence():
    # patience 2, factor 0.5, 10% rel threshold, cooldown 1, from lr 1:
    #   1.0 best; 0.95 and 0.95 bad (not below 0.9); 0.95 the third bad > 2: lr 0.5, cooldown 1;
    #   0.5 best (the cooldown call: counter 0); 0.5, 0.5 bad; 0.5 the third bad: lr 0.25, cooldown 1;
    #   0.5 bad but in cooldown (not counted); 0.5 bad 1.
    o = _options({"patience": 2, "factor": 0.5, "threshold": 0.1, "cooldown": 1})
    losses = [1.0, 0.95, 0.95, 0.95, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    hand = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    assert torch_lrs(o, losses, lr=1.0) == hand and twin_lrs(o, losses, lr=1.0) == hand
    # optax.contrib.reduce_on_plateau with the same patience cuts when its bad calls reach 2: at 0.95 (the 2nd bad),
    # then 0.5 (the cooldown call), 0.5 best, 0.5 bad, 0.5 (2nd bad): 0.25, the cooldown call, 0.5 bad, 0.5 (2nd bad): 0.125
    assert code_lrs(o, losses, ("plateau-patience",), lr=1.0) == [1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]


@pytest.mark.parametrize("options", OPTIONS[:2], ids=["rel", "abs-cooldown-min_lr"])
def test_the_naive_contrib_port_is_torch_one_patience_sooner(options):
    o = _options(options)
    losses = NOISY[:50]  # while torch's cuts exceed eps (contrib has none: past 1e-8 it goes on cutting, torch stops)
    naive = code_lrs(o, losses, ("plateau-patience",))
    assert naive != torch_lrs(o, losses)
    if o["patience"]:  # (optax's patience 0 cuts on every call whose count is 0: each improvement too)
        early = torch_lrs({**o, "patience": o["patience"] - 1}, losses)
        np.testing.assert_allclose(naive, early, rtol=1e-15)  # lr * scale against torch's lr * factor, one product apart


def _spec(plateau, **kw):
    base = {"optimizer": "sgd", "lr": 0.5, "options": {"momentum": 0.9}, "lam": 0.01, "epochs": 30, "batch_size": 110, "shuffle": True}
    return ExperimentSpec(**{**base, **kw, "schedule": NAME, "schedule_options": plateau})


RUNS = [
    ("sgd-momentum", {"patience": 1, "factor": 0.5, "threshold": 0.002}, {}),
    ("adam-mlp-abs-cooldown", {"patience": 2, "factor": 0.3, "threshold": 1e-3, "threshold_mode": "abs", "cooldown": 2, "min_lr": 0.002},
     {"optimizer": "adam", "lr": 0.05, "options": {}, "model": "mlp"}),
    ("adamw-accumulated", {"patience": 1, "factor": 0.5, "threshold": 0.01},
     {"optimizer": "adamw", "convention": "decoupled", "lr": 0.05, "options": {}, "accumulate": 2, "batch_size": 55}),
]  # fmt: skip


@pytest.mark.parametrize("name, options, kw", [RUNS[0], *(pytest.param(*r, marks=pytest.mark.slow) for r in RUNS[1:])],
                         ids=[r[0] for r in RUNS])  # fmt: skip
def test_backends_agree_and_the_lr_is_cut(name, options, kw, default_data):
    spec = _spec(options, **kw)
    ref = backends.train("torch", spec, default_data)
    for b in ("jax", "numpy"):
        assert_same_run(ref, backends.train(b, spec, default_data), 1e-12, f"{b} {name}")
    o = _options(options, spec.epochs)
    lrs = torch_lrs(o, ref.train_loss, lr=spec.lr)  # torch's class given torch's recorded epoch losses
    assert len(set(lrs)) >= 3, lrs  # the run cuts its lr at least twice
    constant = backends.train("numpy", spec.replace(schedule="constant", schedule_options={}), default_data)
    assert max_gap(ref, constant) > 1e-3


def test_a_resumed_plateau_run_is_the_uninterrupted_run(default_data):
    spec = _spec(RUNS[0][1], epochs=12)
    for b in ("torch", "numpy", "jax"):
        whole = backends.train(b, spec, default_data)
        assert max_gap(whole, backends.train(b, spec.replace(resume_at=25), default_data)) == 0.0, b  # mid-epoch, after 2 cuts


def test_the_naive_patience_alone_is_a_named_mismatch_and_torch_one_patience_sooner(capsys, default_data):
    spec = _spec({"patience": 2, "factor": 0.5, "threshold": 0.002}, lam=0.0)
    naive = backends.train("jax", spec.replace(port="naive", naive_schedule=("plateau-patience",)), default_data)
    sooner = backends.train("torch", spec.replace(schedule_options={"patience": 1, "factor": 0.5, "threshold": 0.002}), default_data)
    assert max_gap(naive, sooner) <= 1e-12
    argv = ["--lam", "0", "--momentum", "0.9", "--lr", "0.5", "--epochs", "30", "--batch-size", "110", "--shuffle",
            "--schedule", "ReduceLROnPlateau(patience=2, factor=0.5, threshold=0.002)", "--backend", "torch", "--backend", "jax"]  # fmt: skip
    assert main(argv + ["--naive-schedule", "plateau-patience"]) == 1
    out = capsys.readouterr().out
    assert "mismatch from step" in next(ln for ln in out.splitlines() if ln.startswith("jax/coupled/naive")), out
    assert " match " in next(ln for ln in out.splitlines() if ln.startswith("jax/coupled ")), out
    assert "plateau-patience: optax.contrib.reduce_on_plateau" in out and "with the epoch's loss" in out, out


def test_translate_prints_code_that_runs_and_cuts_as_torch(tmp_path, capsys):
    import json

    out = tmp_path / "t.json"
    assert main(["translate", "--from", "torch.ReduceLROnPlateau", "--lr", "0.05", "--option", "patience=2", "--option", "factor=0.5",
                 "--option", "threshold=0.01", "--json", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    t = json.loads(out.read_text())
    assert all(f"  {ln}\n" in printed for ln in t["optax_code"].splitlines() if ln)
    assert "scheduler.step(epoch_loss)" in printed and "plateau-patience: " in printed
    import jax
    import jax.numpy as jnp

    o = _options({"patience": 2, "factor": 0.5, "threshold": 0.01})
    for code, naive in ((t["optax_code"], ()), (t["naive_code"], ("plateau-patience",))):
        with jax.enable_x64(True):
            fns = schedules.defined(code.splitlines(), 0.05)  # the printed text itself, executed

            def body(state, loss):
                state = fns["plateau_step"](state, loss)
                return state, fns["plateau_lr"](state)

            got = [float(v) for v in jax.jit(lambda ls: jax.lax.scan(body, fns["plateau_init"](0.05), ls)[1])(jnp.asarray(NOISY))]
        np.testing.assert_allclose(got, code_lrs(o, NOISY, naive), rtol=1e-15)
        if not naive:
            assert got == torch_lrs(o, NOISY)  # the exact code is torch's class
    assert got != torch_lrs(o, NOISY)  # the naive code differs from torch's


@pytest.mark.parametrize("backend", ["torch", "numpy", "jax"])
def test_a_single_step_is_refused(backend, default_data):
    from xreg.core.plan import make_plan
    from xreg.core.structure import split

    spec = _spec(RUNS[0][1], epochs=2)
    s, hp = split(spec, default_data)
    mod = backends.load(backend)
    state = mod.init(s, hp, make_plan(spec, default_data.n_train, s.arch).params0)
    batch = next(make_plan(spec, default_data.n_train, s.arch).data_batches(default_data.X_train, default_data.y_train))
    with pytest.raises(ValueError, match="epoch's loss over the whole training set"):
        mod.step(state, batch, hp)


def test_translate_says_when_the_naive_port_cannot_be_written(capsys):
    assert main(["translate", "--from", "torch.ReduceLROnPlateau", "--option", "threshold=0"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("none: optax.contrib.reduce_on_plateau refuses rtol = atol = 0 (torch's threshold=0)"), out
    with pytest.raises(ValueError, match="At least one of rtol or atol must be positive"):  # the premise, in optax itself
        import optax

        optax.contrib.reduce_on_plateau(rtol=0.0, atol=0.0)
