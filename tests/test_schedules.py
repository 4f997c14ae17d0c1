"""torch's lr schedulers: xreg's twin against the real torch class (bit for bit), the exact optax schedule
against torch's lrs (to 1e-15 of the schedule's scale; torch's chainable cosine drifts from its own formula
past T_max, measured), the naive optax schedules (each differs where it acts and only there), optax's
float32 lrs for an int32 count, and the three backends on every class, per step and per epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers import assert_same_run
from xreg import backends, schedules
from xreg.cli import main
from xreg.core.spec import ExperimentSpec
from xreg.schedules import Context

CALLS = 500
LR = 0.05
TIGHT = 2e-15  # of the schedule's peak: torch's lrs and optax's closed forms, rounded apart

# Non-default options of every class (the kinds torch's own test_lrscheduler.py steps: milestones given twice,
# three-phase and linear one-cycle, triangular2 and exp_range cycles, warm restarts with T_mult, members).
CASES = [
    ("StepLR", {"step_size": 7, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": (3, 10, 10, 40), "gamma": 0.3}),
    ("ExponentialLR", {"gamma": 0.99}),
    ("CosineAnnealingLR", {"T_max": 499, "eta_min": 0.001}),
    ("CosineAnnealingWarmRestarts", {"T_0": 5, "T_mult": 2, "eta_min": 0.002}),
    ("CosineAnnealingWarmRestarts", {"T_0": 7}),
    ("OneCycleLR", {"max_lr": 0.1, "cycle_momentum": False}),
    ("OneCycleLR", {"max_lr": 0.1, "cycle_momentum": False, "pct_start": 0.25, "anneal_strategy": "linear", "three_phase": True,
                    "div_factor": 10.0, "final_div_factor": 100.0}),
    ("LinearLR", {"start_factor": 0.1, "end_factor": 0.9, "total_iters": 13}),
    ("ConstantLR", {"factor": 0.5, "total_iters": 9}),
    ("PolynomialLR", {"total_iters": 30, "power": 2.0}),
    ("CyclicLR", {"base_lr": 0.01, "max_lr": 0.2, "step_size_up": 7, "step_size_down": 4, "cycle_momentum": False, "mode": "triangular2"}),
    ("CyclicLR", {"max_lr": 0.2, "step_size_up": 7, "cycle_momentum": False, "mode": "exp_range", "gamma": 0.99}),
    ("OneCycleLR", {"max_lr": 0.1, "base_momentum": 0.8, "max_momentum": 0.92}),  # torch's default cycle_momentum=True
    ("CyclicLR", {"max_lr": 0.2, "step_size_up": 9, "mode": "triangular2", "base_momentum": 0.7}),
    ("LambdaLR", {"expr": "1/(1 + 0.05*epoch)"}),
    ("MultiplicativeLR", {"expr": "0.99 + 0.005*cos(epoch)"}),
    ("MultiplicativeLR", {"expr": "0.995"}),  # a constant factor (the common use): broadcast over the counts
    ("SequentialLR", {"schedulers": "LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=495)", "milestones": (5,)}),
    ("SequentialLR", {"schedulers": "ConstantLR(factor=0.5, total_iters=3), ExponentialLR(gamma=0.9), CosineAnnealingWarmRestarts(T_0=4)",
                      "milestones": (6, 20)}),
    ("ChainedScheduler", {"schedulers": "ConstantLR(factor=0.5, total_iters=3), ExponentialLR(gamma=0.95), StepLR(step_size=10, gamma=0.7)"}),
]  # fmt: skip
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(CASES)]


def _options(name, options, calls=CALLS, every="step", batches=1, lr=LR):
    return dict(schedules.for_run(name, schedules.resolve(name, options), Context(calls, batches, every, lr)))


def torch_lrs(name, o, calls=CALLS, lr=LR):
    """The lr torch's real class gives each step, on a real optimizer, stepped as a training loop steps it."""
    p = [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))]
    opt = torch.optim.SGD(p, lr=lr)
    sched = schedules.torch_scheduler(name, o, opt)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(calls - 1):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return np.array(out)


def optax_lrs(lines, calls=CALLS, lr=LR, count_dtype="float64"):
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        f = schedules.execute(lines, jnp.asarray(lr))
        return np.asarray(jax.jit(jax.vmap(f))(jnp.arange(calls).astype(count_dtype)))


def test_every_torch_class_has_a_case():
    import torch.optim.lr_scheduler as sl

    classes = {n for n, c in vars(sl).items() if isinstance(c, type) and issubclass(c, sl.LRScheduler) and not n.startswith("_")}
    # LRScheduler is the base class; ReduceLROnPlateau reads the loss, not the count: tests/test_plateau.py
    assert classes - {"LRScheduler"} == set(schedules.REGISTRY)
    assert {n for n, _ in CASES} == set(schedules.REGISTRY) - {"ReduceLROnPlateau"}


PAST_T_MAX = [("CosineAnnealingLR", {"T_max": 40, "eta_min": 0.001}), ("CosineAnnealingLR", {"T_max": 7})]  # torch's rising branch


@pytest.mark.parametrize("name, options", CASES + PAST_T_MAX, ids=IDS + ["cosine-past-T_max", "cosine-past-T_max-7"])
def test_twin_is_torch_bit_for_bit(name, options):
    o = _options(name, options)
    assert schedules.lrs_of(name, o, LR, CALLS) == list(torch_lrs(name, o))


@pytest.mark.parametrize("name, options", CASES, ids=IDS)
def test_exact_optax_schedule_is_torchs_lrs(name, options):
    o = _options(name, options)
    want = torch_lrs(name, o)
    got = optax_lrs(schedules.code(name, o, Context(CALLS, 1, "step")))
    assert got.dtype == np.float64
    # measured: <= 2.8e-16 of the peak but for torch's chainable cosine over 499 calls (1.4e-15: its own recursion)
    # and CyclicLR's exp_range (1.0e-15: Python's pow against XLA's)
    assert np.max(np.abs(got - want)) <= TIGHT * np.max(np.abs(want)), (name, np.max(np.abs(got - want)) / np.max(want))


def test_per_epoch_code_holds_each_epochs_lr():
    o = _options("StepLR", {"step_size": 3, "gamma": 0.5}, calls=20, every="epoch", batches=7)
    lines = schedules.code("StepLR", o, Context(20, 7, "epoch"))
    got = optax_lrs(lines, calls=140)
    np.testing.assert_array_equal(got, np.repeat(torch_lrs("StepLR", o, calls=20), 7))


def test_torchs_chainable_cosine_drifts_from_its_formula_past_T_max():
    # Past T_max torch's cosine rises again; its chainable ratios drift from the formula, optax's closed form does not.
    o = _options("CosineAnnealingLR", {"T_max": 40, "eta_min": 0.001})
    t = np.arange(CALLS)
    formula = 0.001 + (LR - 0.001) * (1 + np.cos(np.pi * t / 40)) / 2
    got = optax_lrs(schedules.code("CosineAnnealingLR", o, Context(CALLS, 1, "step")))
    drift = np.max(np.abs(torch_lrs("CosineAnnealingLR", o) - formula)) / LR
    assert np.max(np.abs(got - formula)) <= 1e-14 * LR  # measured 3.5e-15: XLA's cos of pi*t/40 up to 12*pi
    assert 1e-14 < drift < 1e-12, drift  # measured 1.0e-13 over 500 calls: round-off of torch's recursion


NAIVE = [(n, o) for n, o in CASES if schedules.naive_of(n) is not None]
NOT_ACTING = [  # the naive form is torch's here: its difference needs what these options leave out
    ("StepLR", {"step_size": 1, "gamma": 0.5}),
    ("MultiStepLR", {"milestones": (3, 10), "gamma": 0.3}),
    ("CosineAnnealingLR", {"T_max": CALLS - 1}),
    ("CosineAnnealingWarmRestarts", {"T_0": 7}),
    ("SequentialLR", {"schedulers": "LinearLR(start_factor=0.1, total_iters=5), ExponentialLR(gamma=0.99)", "milestones": (5,)}),
]  # fmt: skip


@pytest.mark.parametrize("name, options", NAIVE, ids=[n for n, _ in NAIVE])
def test_naive_schedule_differs_where_it_acts(name, options):
    o = _options(name, options)
    ctx = Context(CALLS, 1, "step")
    naive = schedules.naive_of(name)
    want = torch_lrs(name, o)
    got = optax_lrs(schedules.code(name, o, ctx, (naive.code,)))
    gap = np.max(np.abs(got - want)) / np.max(want)
    if naive.acts(o, ctx):
        assert gap > 1e-6, (name, gap)
    else:
        assert gap <= TIGHT, (name, gap)


@pytest.mark.parametrize("name, options", NOT_ACTING, ids=[n for n, _ in NOT_ACTING])
def test_naive_schedule_is_exact_where_it_does_not_act(name, options):
    o = _options(name, options)
    ctx = Context(CALLS, 1, "step")
    naive = schedules.naive_of(name)
    assert not naive.acts(o, ctx)
    got = optax_lrs(schedules.code(name, o, ctx, (naive.code,)))
    want = torch_lrs(name, o)
    assert np.max(np.abs(got - want)) <= TIGHT * np.max(want)


def test_the_naive_warmup_cosine_is_optax_warmup_cosine_decay_schedule():
    # The naive SequentialLR executes optax's pieces written out (a traced lr cannot pass optax's peak == 0 test):
    # they are the call a porter writes, value for value.
    import optax

    o = _options("SequentialLR", next(c for n, c in CASES if n == "SequentialLR"))
    got = optax_lrs(schedules.code("SequentialLR", o, Context(CALLS, 1, "step"), ("warmup-cosine-steps",)))
    f = optax.warmup_cosine_decay_schedule(init_value=LR * 0.1, peak_value=LR, warmup_steps=5, decay_steps=495, end_value=0.0)
    import jax

    with jax.enable_x64(True):
        want = np.array([float(f(float(t))) for t in range(CALLS)])
    assert np.max(np.abs(got - want)) <= TIGHT * LR  # measured 3.8e-16: the jitted cos against the eager one


@pytest.mark.parametrize("name, options", CASES, ids=IDS)
def test_optax_computes_in_float32_for_an_int32_count(name, options):
    # Under x64, exponential_decay, linear_schedule and polynomial_schedule return float32 for optax's int32 count.
    o = _options(name, options)
    got = optax_lrs(schedules.code(name, o, Context(CALLS, 1, "step")), count_dtype="int32")
    assert (got.dtype == np.float32) == schedules.int32_float32(name, o), (name, got.dtype)


# ---- the three backends: torch's real class, JAX's optax code, NumPy's twin --------------------------------------
def _spec(name, options, every, **kw):
    # 50 epochs of 10 batches (109-110 rows; the last 106) = 500 steps; SGD momentum with coupled decay
    return ExperimentSpec(optimizer="sgd", options={"momentum": 0.9}, lr=LR, lam=0.01, epochs=50, batch_size=110, shuffle=True,
                          schedule=name, schedule_options=options, schedule_every=every, **kw)  # fmt: skip


PER_EPOCH = [("StepLR", {"step_size": 7, "gamma": 0.5}), ("OneCycleLR", {"cycle_momentum": False, "three_phase": True}),
             ("SequentialLR", {"schedulers": "LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=45)", "milestones": (5,)}),
             ("CyclicLR", {"max_lr": 0.2, "step_size_up": 3, "cycle_momentum": False})]  # fmt: skip


def _agree(spec, default_data):
    ref = backends.train("torch", spec, default_data)
    for b in ("jax", "numpy"):
        assert_same_run(ref, backends.train(b, spec, default_data), 1e-12, f"{b} {spec.schedule} {spec.schedule_every}")
    return ref


@pytest.mark.parametrize("name, options", PER_EPOCH, ids=[n for n, _ in PER_EPOCH])
def test_backends_agree_per_epoch(name, options, default_data):
    _agree(_spec(name, options, "epoch"), default_data)


@pytest.mark.slow
@pytest.mark.parametrize("every", ["step", "epoch"])
@pytest.mark.parametrize("name, options", CASES, ids=IDS)
def test_backends_agree_on_every_class(name, options, every, default_data):
    if every == "epoch":  # the options count epochs now: 50 calls
        options = {k: v for k, v in options.items() if k not in ("T_max", "total_steps")}
        if name == "SequentialLR":
            options = {**options, "schedulers": options["schedulers"].replace("T_max=495", "T_max=45")}
    _agree(_spec(name, options, every), default_data)


def test_backends_agree_per_step(default_data):
    _agree(_spec("OneCycleLR", {"cycle_momentum": False, "anneal_strategy": "linear"}, "step"), default_data)


def test_a_schedule_acts_on_the_run(default_data):
    # the lr sequence reaches the parameters: a per-step schedule is not the per-epoch one, nor a constant lr
    a = backends.train("numpy", _spec("StepLR", {"step_size": 7}, "step"), default_data).flat
    b = backends.train("numpy", _spec("StepLR", {"step_size": 7}, "epoch"), default_data).flat
    c = backends.train("numpy", _spec("constant", {}, "epoch"), default_data).flat
    assert np.max(np.abs(a - b)) > 1e-3 and np.max(np.abs(b - c)) > 1e-3


# ---- the naive schedule of a comparison: each difference alone, named -------------------------------------------
ALONE = [
    ("staircase", ["--schedule", "StepLR(step_size=30)", "--schedule-every", "step"]),
    ("cosine-decay-steps", ["--schedule", "CosineAnnealingLR(T_max=100)", "--schedule-every", "step"]),
    ("onecycle-phases", ["--schedule", "OneCycleLR(cycle_momentum=False)", "--schedule-every", "step"]),
    ("warmup-start", ["--schedule", "LinearLR(start_factor=0.25, total_iters=40)", "--schedule-every", "step"]),
    ("warmup-cosine-steps", ["--schedule", "SequentialLR", "--schedule-opt",
                             "schedulers=LinearLR(start_factor=0.1, total_iters=20), CosineAnnealingLR(T_max=180)",
                             "--schedule-opt", "milestones=20", "--schedule-every", "step"]),
    ("restart-length", ["--schedule", "CosineAnnealingWarmRestarts(T_0=20, T_mult=2)", "--schedule-every", "step"]),
    ("repeated-milestone", ["--schedule", "MultiStepLR(gamma=0.5)", "--schedule-opt", "milestones=50,50", "--schedule-every", "step"]),
    ("epoch-count", ["--schedule", "CosineAnnealingLR()"]),
    ("int32-count", ["--schedule", "ExponentialLR(gamma=0.99)", "--schedule-every", "step"]),
    ("momentum-not-cycled", ["--schedule", "CyclicLR(max_lr=0.1, step_size_up=30)", "--schedule-every", "step"]),
]  # fmt: skip


FAST_ALONE = ("staircase", "epoch-count", "warmup-cosine-steps")  # the rest in the full tier


@pytest.mark.parametrize("code, argv", [a if a[0] in FAST_ALONE else pytest.param(*a, marks=pytest.mark.slow) for a in ALONE],
                         ids=[c for c, _ in ALONE])  # fmt: skip
def test_each_naive_schedule_difference_alone_is_a_named_mismatch(code, argv, capsys):
    # SGD with momentum and no decay: optax.sgd is torch's rule, so the schedule is the only difference
    base = ["--lam", "0", "--momentum", "0.9", "--epochs", "20", "--batch-size", "110", "--backend", "torch", "--backend", "jax"]
    assert main(base + argv + ["--naive-schedule", code]) == 1
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("jax/coupled/naive"))
    assert "mismatch from step" in row, out
    exact = next(ln for ln in out.splitlines() if ln.startswith("jax/coupled "))
    assert " match " in exact, out
    assert f"{code}: " in out and "optax alias is exact" not in out, out


def test_the_naive_schedule_of_a_float32_run_is_not_int32_count():
    ctx = Context(10, 1, "step")
    o = _options("ExponentialLR", {"gamma": 0.9}, calls=10)
    assert schedules.acting("ExponentialLR", o, ctx, "float32") == ()
    assert schedules.acting("ExponentialLR", o, ctx, "float64") == ("int32-count",)


def test_old_names_are_torch_classes():
    assert [schedules.canonical(n) for n in ("step", "exponential", "cosine", "lambda", "constant", "steplr")] == [
        "StepLR", "ExponentialLR", "CosineAnnealingLR", "LambdaLR", "constant", "StepLR"]  # fmt: skip
    assert math.isclose(_options("CosineAnnealingLR", {}, calls=17)["T_max"], 17)


# ---- xreg translate --from torch.<scheduler>: the printed optax code runs, and gives torch's lrs ---------------
TRANSLATE = [("StepLR", ["--option", "step_size=3"], "epoch", 4), ("SequentialLR", [
    "--option", "schedulers=LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=95)", "--option", "milestones=5"], "step", 1),
    ("OneCycleLR", ["--option", "max_lr=0.2", "--option", "cycle_momentum=false"], "step", 1),
    ("CosineAnnealingLR", ["--option", "eta_min=0.001"], "epoch", 3), ("CyclicLR", ["--option", "max_lr=0.3", "--option",
    "cycle_momentum=false", "--option", "step_size_up=9"], "epoch", 2), ("LambdaLR", ["--option", "expr=0.97**epoch"], "step", 1),
    ("ChainedScheduler", ["--option", "schedulers=MultiplicativeLR(expr=0.99), StepLR(step_size=7)"], "epoch", 2)]  # fmt: skip


@pytest.mark.parametrize("name, argv, every, batches", TRANSLATE, ids=[t[0] for t in TRANSLATE])
def test_translated_schedules_run_and_give_torchs_lrs(name, argv, every, batches, capsys, tmp_path):
    import json

    from xreg.analysis.translate_schedules import IMPORTS

    out = tmp_path / "t.json"
    per_epoch = ["--batches", str(batches)] if every == "epoch" else []
    assert main(["translate", "--from", f"torch.{name}", "--lr", "0.1", "--calls", "100", "--schedule-every", every,
                 *per_epoch, *argv, "--json", str(out)]) == 0  # fmt: skip
    t = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert all(f"  {ln}\n" in printed for ln in t["optax_code"].splitlines())  # the code printed is the code run below
    o = schedules.for_run(name, schedules.resolve(name, t["options"]), Context(100, batches, every, 0.1))
    want = np.repeat(torch_lrs(name, dict(o), calls=100, lr=0.1), batches)
    ns: dict = {}
    import jax

    with jax.enable_x64(True):  # as the printed note says: with x64 on
        exec(IMPORTS + "\nlr = 0.1\n" + t["optax_code"], ns)
        got = np.array([float(ns["schedule"](jax.numpy.asarray(c, jax.numpy.float64))) for c in range(100 * batches)])
    assert np.max(np.abs(got - want)) <= TIGHT * np.max(want)
    # the printed torch code builds the class that gives those lrs
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))], lr=0.1)
    sched = eval(t["torch_code"], {"torch": torch, "optimizer": opt})  # noqa: S307 (the code translate printed)
    printed = [opt.param_groups[0]["lr"]]
    for _ in range(99):
        opt.step()
        sched.step()
        printed.append(opt.param_groups[0]["lr"])
    np.testing.assert_array_equal(np.repeat(printed, batches), want)
    ns = {}
    with jax.enable_x64(True):
        exec(IMPORTS + "\nlr = 0.1\n" + t["naive_code"], ns)
        naive = np.array([float(ns["schedule"](jax.numpy.asarray(c, jax.numpy.float64))) for c in range(100 * batches)])
    acts = [c for c in t["differs"] if c != "int32-count"]
    assert (np.max(np.abs(naive - want)) > 1e-6 * np.max(want)) == bool(acts), (t["differs"], np.max(np.abs(naive - want)))


def test_explain_schedules_lists_every_class_and_each_difference(capsys):
    assert main(["explain", "schedules"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{name}" in out for name in schedules.REGISTRY)
    assert all(f"{code}: " in out for code in schedules.NAIVE_CODES)
    assert main(["explain", "schedules", "--lr", "0.1"]) == 2
    assert capsys.readouterr().err.startswith("error: --lr is for an optimizer")


# ---- cycle_momentum: OneCycleLR and CyclicLR move the optimizer's momentum (Adam's beta1) beside the lr ----------
CYCLING = [("OneCycleLR", {"max_lr": 0.1}), ("OneCycleLR", {"max_lr": 0.1, "three_phase": True, "anneal_strategy": "linear",
                                                             "base_momentum": 0.7, "max_momentum": 0.99}),
           ("CyclicLR", {"max_lr": 0.2, "step_size_up": 7, "mode": "triangular2"}),
           ("CyclicLR", {"max_lr": 0.2, "step_size_up": 5, "step_size_down": 3, "mode": "exp_range", "gamma": 0.99})]  # fmt: skip


def torch_momenta(name, o, optimizer, calls=CALLS):
    p = [torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))]
    opt = optimizer(p)
    sched = schedules.torch_scheduler(name, o, opt)
    read = (lambda g: g["betas"][0]) if "betas" in opt.defaults else (lambda g: g["momentum"])  # noqa: E731
    out = [read(opt.param_groups[0])]
    for _ in range(calls - 1):
        opt.step()
        sched.step()
        out.append(read(opt.param_groups[0]))
    return np.array(out)


@pytest.mark.parametrize("name, options", CYCLING, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CYCLING)])
def test_the_cycled_momentum_is_torchs_in_the_twin_and_in_jax(name, options):
    o = _options(name, options)
    for optimizer in (lambda p: torch.optim.SGD(p, lr=LR, momentum=0.9), lambda p: torch.optim.Adam(p, lr=LR)):
        want = torch_momenta(name, o, optimizer)
        assert schedules.momenta_of(name, o, CALLS) == list(want)
        got = optax_lrs_of(schedules.momentum_code(name, o, Context(CALLS, 1, "step")), "momentum")
        assert np.max(np.abs(got - want)) <= TIGHT, name
    assert np.ptp(want) > 0.01  # it moves


def optax_lrs_of(lines, defines):
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        f = schedules.execute(lines, jnp.asarray(LR), defines)
        return np.asarray(jax.jit(jax.vmap(f))(jnp.arange(CALLS, dtype=jnp.float64)))


@pytest.mark.parametrize("optimizer, options", [("sgd", {}), ("adam", {}), ("rmsprop", {"momentum": 0.5}), ("nadam", {})])
def test_backends_agree_when_the_momentum_cycles(optimizer, options, default_data):
    spec = ExperimentSpec(optimizer=optimizer, options=options, lr=LR, lam=0.01, epochs=10, batch_size=110, shuffle=True,
                          schedule="OneCycleLR", schedule_every="step")  # fmt: skip
    ref = _agree(spec, default_data)
    still = backends.train("numpy", spec.replace(schedule_options={"cycle_momentum": False}), default_data)
    assert np.max(np.abs(ref.flat - still.flat)) > 1e-4  # the cycled momentum acts (SGD's too: torch sets it from 0)


def test_translate_prints_the_cycled_momentum_and_it_runs(tmp_path):
    import json

    import jax

    from xreg.analysis.translate_schedules import IMPORTS

    out = tmp_path / "t.json"
    assert main(["translate", "--from", "torch.OneCycleLR", "--calls", "60", "--schedule-every", "step", "--json", str(out)]) == 0
    t = json.loads(out.read_text())
    want = torch_momenta("OneCycleLR", dict(schedules.for_run("OneCycleLR", schedules.resolve("OneCycleLR", t["options"]),
                                                              Context(60, 1, "step", 0.05))), lambda p: torch.optim.SGD(p, lr=0.05), 60)  # fmt: skip
    ns: dict = {}
    with jax.enable_x64(True):
        exec(IMPORTS + "\nlr = 0.05\n" + t["momentum_code"], ns)
        got = np.array([float(ns["momentum"](jax.numpy.asarray(c, jax.numpy.float64))) for c in range(60)])
    assert np.max(np.abs(got - want)) <= TIGHT


def test_the_json_says_the_numbers_torch_was_given(tmp_path):
    import json

    out = tmp_path / "c.json"
    assert main(["--schedule", "CosineAnnealingLR", "--epochs", "7", "--backend", "numpy", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schedule"] == {"name": "CosineAnnealingLR", "every": "epoch", "calls": 7, "options": {"T_max": 7, "eta_min": 0.0},
                               "torch": "CosineAnnealingLR(T_max=7, eta_min=0.0)"}  # fmt: skip
