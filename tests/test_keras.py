"""Keras 3 as a fourth framework: the real keras.optimizers on a keras.Model (the keras backend, Keras on JAX)
against xreg's twins of each Keras rule in torch, JAX and NumPy; Keras's own golden values (its
keras/src/optimizers/*_test.py) reproduced by the twins; where each Keras rule parts from torch's namesake;
and the keras import kept out of every run that does not ask for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import assert_same_run, max_gap
from xreg import backends, optimizers
from xreg.cli import main
from xreg.core.spec import ExperimentSpec

ROOT = Path(__file__).resolve().parents[1]
RULES = [
    ("keras.sgd", {}), ("keras.sgd", {"momentum": 0.9}), ("keras.sgd", {"momentum": 0.9, "nesterov": True}),
    ("keras.adam", {}), ("keras.adam", {"amsgrad": True, "epsilon": 1e-3}), ("keras.adamw", {}),
    ("keras.rmsprop", {}), ("keras.rmsprop", {"momentum": 0.5, "centered": True, "rho": 0.8}),
]  # fmt: skip
IDS = [f"{n}-{i}" for i, (n, _) in enumerate(RULES)]
FAST = {"keras.sgd-1", "keras.adam-3"}


def _spec(name, options, **kw):
    # 300 float64 steps: 30 epochs of 10 batches, Keras's weight_decay on the weight only (the bias excluded, Keras's
    # exclude_from_weight_decay), a per-step StepLR
    base = {"lr": 0.05, "lam": 0.01, "epochs": 30, "batch_size": 110, "convention": "decoupled", "no_decay": ("bias",),
            "schedule": "StepLR", "schedule_options": {"step_size": 40, "gamma": 0.5}, "schedule_every": "step", "shuffle": True}
    return ExperimentSpec(optimizer=name, options=options, **{**base, **kw})


@pytest.mark.parametrize("name, options", [r if i in FAST else pytest.param(*r, marks=pytest.mark.slow) for i, r in zip(IDS, RULES)],
                         ids=IDS)  # fmt: skip
def test_keras_and_the_twins_agree_over_300_steps(name, options, default_data):
    spec = _spec(name, options)
    ref = backends.train("keras", spec, default_data)
    assert ref.meta["optimizer"] == f"keras.optimizers.{optimizers.get(name).keras_class}" and ref.steps_at[-1] == 300
    for b in ("torch", "jax", "numpy"):
        assert_same_run(ref, backends.train(b, spec, default_data), 1e-12, f"{b} {name}")
    plain = backends.train("numpy", spec.replace(lam=0.0), default_data)
    assert max_gap(ref, plain) > 1e-4  # the weight decay acts (and only on the weight: see the next test)


def test_exclude_from_weight_decay_leaves_the_bias_undecayed(default_data):
    spec = _spec("keras.sgd", {}, lam=5.0, schedule="constant", schedule_options={}, schedule_every="epoch", epochs=3)
    everything = backends.train("keras", spec.replace(no_decay=()), default_data)
    weight_only = backends.train("keras", spec, default_data)
    assert np.max(np.abs(everything.params["bias"] - weight_only.params["bias"])) > 1e-3
    assert_same_run(weight_only, backends.train("torch", spec, default_data), 1e-12, "torch, bias excluded")


@pytest.mark.slow
@pytest.mark.parametrize("name, options", [RULES[7]], ids=["rmsprop-centered"])  # (every rule on the default problem above)
def test_keras_on_the_digits_mlp_and_a_user_csv(name, options, user_csv):
    from xreg.io import data

    digits = data.load("digits", model="mlp", standardize=True)
    spec = _spec(name, options, model="mlp", hidden=(16,), activation="relu", epochs=4, batch_size=128, lr=0.01)
    ref = backends.train("keras", spec, digits)
    for b in ("torch", "jax", "numpy"):
        assert_same_run(ref, backends.train(b, spec, digits), 1e-12, f"{b} digits {name}")
    own = data.load(str(user_csv), target="label")
    spec = _spec(name, options, epochs=10, batch_size=32)
    ref = backends.train("keras", spec, own)
    for b in ("torch", "jax", "numpy"):
        assert_same_run(ref, backends.train(b, spec, own), 1e-12, f"{b} csv {name}")


@pytest.mark.parametrize("name, options", [RULES[4]], ids=["adam-amsgrad"])
def test_float32_keras_and_the_twins_agree_within_keras_own_error(name, options, default_data):
    spec = _spec(name, options, dtype="float32", epochs=10)
    ref = backends.train("keras", spec, default_data)
    wide = backends.train("keras", spec.replace(dtype="float64"), default_data)
    own = max_gap(ref, wide)  # Keras's own float32 error against its float64 run
    for b in ("torch", "jax", "numpy"):
        twin = backends.train(b, spec, default_data)
        assert max_gap(ref, twin) <= 2 * own, b
        assert max_gap(twin, backends.train(b, spec.replace(dtype="float64"), default_data)) > own / 4, b  # it ran in float32


# ---- Keras's own optimizer tests (keras/src/optimizers/*_test.py, Keras 3.15.1), reproduced by the twins --------
G_FIRST, G_REST = np.full(10, 0.01), np.arange(0.1, 1.1, 0.1)
GOLDEN = [  # (case, rule, options, lr, weight_decay, start, gradients, expected after each step, Keras's tolerance)
    ("sgd single_step", "keras.sgd", {}, 0.5, 0.0, [1.0, 2.0, 3.0, 4.0], [[1.0, 6.0, 7.0, 2.0]], [[0.5, -1.0, -0.5, 3.0]], 1e-4),
    ("adam single_step", "keras.adam", {}, 0.5, 0.0, [1.0, 2.0, 3.0, 4.0], [[1.0, 6.0, 7.0, 2.0]], [[0.5, 1.5, 2.5, 3.5]], 1e-4),
    ("adamw single_step", "keras.adamw", {}, 0.5, 0.004, [1.0, 2.0, 3.0, 4.0], [[1.0, 6.0, 7.0, 2.0]],
     [[0.4980, 1.4960, 2.494, 3.492]], 1e-4),
    ("rmsprop single_step", "keras.rmsprop", {}, 0.5, 0.0, [1.0, 2.0, 3.0, 4.0], [[1.0, 6.0, 7.0, 2.0]],
     [[-0.5811, 0.4189, 1.4189, 2.4189]], 1e-4),
    *[(f"{r} weight_decay", f"keras.{r}", {}, 1.0, 0.004, [2.0], [[0.0]] * 3, [[1.992], [1.984032], [1.9760959]], 1e-6)
      for r in ("sgd", "adam", "adamw", "rmsprop")],  # var1, decayed by three optimizers in turn: 2*(1 - 0.004)^3
    ("sgd golden (nesterov flag, momentum 0: plain SGD, as Keras's test runs it)", "keras.sgd", {"momentum": 0.0, "nesterov": True}, 0.01, 0.0, [1.0] * 10, [G_FIRST] + [G_REST] * 4,
     [[0.9999] * 10, [0.9989, 0.9979, 0.9969, 0.9959, 0.9949, 0.9939, 0.9929, 0.9919, 0.9909, 0.9899],
      [0.9979, 0.9959, 0.9939, 0.9919, 0.9899, 0.9879, 0.9859, 0.9839, 0.9819, 0.9799],
      [0.9969, 0.9939, 0.9909, 0.9879, 0.9849, 0.9819, 0.9789, 0.9759, 0.9729, 0.9699],
      [0.9959, 0.9919, 0.9879, 0.9839, 0.9799, 0.9759, 0.9719, 0.9679, 0.9639, 0.9599]], 5e-4),
    ("adam golden (amsgrad)", "keras.adam", {"amsgrad": True}, 0.001, 0.0, [1.0] * 10, [G_FIRST] + [G_REST] * 4,
     [[v] * 10 for v in (0.999, 0.9982, 0.9974, 0.9965, 0.9955)], 5e-4),
    ("adamw golden", "keras.adamw", {"epsilon": 2.0}, 1.0, 0.5, [1.0] * 10, [G_FIRST] + [G_REST] * 4,
     [[0.4998] * 10, [0.2486, 0.2475, 0.2463, 0.2451, 0.244, 0.2428, 0.2417, 0.2405, 0.2394, 0.2382],
      [0.1223, 0.1198, 0.1174, 0.1149, 0.1124, 0.11, 0.1075, 0.1051, 0.1027, 0.1003],
      [0.0586, 0.0549, 0.0512, 0.0475, 0.0439, 0.0402, 0.0366, 0.033, 0.0294, 0.0258],
      [0.0263, 0.0215, 0.0167, 0.012, 0.0073, 0.0026, -0.0021, -0.0067, -0.0113, -0.0159]], 5e-4),
    ("rmsprop golden (centered)", "keras.rmsprop", {"centered": True}, 0.001, 0.0, [1.0] * 10, [G_FIRST] + [G_REST] * 4,
     [[v] * 10 for v in (0.9967, 0.9933, 0.9908, 0.9885, 0.9864)], 5e-4),
]  # fmt: skip


def _twin_runs(name, options, lr, wd, start, grads):
    """Each twin stepped on the given gradients from ``start``, float64: NumPy's reference (Keras's decay first, as
    xreg's recipe runs it), the optax twin (its decoupled k = lr*wd) and the torch twin; each step's parameters."""
    import jax
    import jax.numpy as jnp

    opt = optimizers.get(name)
    o = opt.resolve(options)
    flags = dict(opt.structure_flags(o))
    w0 = np.asarray(start, np.float64)
    ref, w, out = opt.reference(o, flags, w0), w0.copy(), {"numpy": [], "jax": [], "torch": []}
    for t, g in enumerate(grads, 1):
        w = ref.step(w - (lr * wd) * w, np.asarray(g, np.float64), np.float64(lr), t)
        out["numpy"].append(w)
    with jax.enable_x64(True):
        from xreg.optimizers.base import Options

        tx = opt.direction(flags, Options({k: jnp.asarray(v) for k, v in o.items() if not isinstance(v, bool)}), jnp.asarray(lr),
                           jnp.asarray(lr * wd) if wd else None)[0].transform  # fmt: skip
        p = jnp.asarray(w0)
        state = tx.init(p)
        for g in grads:
            d, state = tx.update(jnp.asarray(g, jnp.float64), state, p)
            p = p - d
            out["jax"].append(np.asarray(p))
    param = torch.nn.Parameter(torch.tensor(w0))
    topt = opt.torch_twin()([param], lr=lr, weight_decay=wd, **{k: v for k, v in o.items()})
    for g in grads:
        param.grad = torch.tensor(np.asarray(g, np.float64))
        topt.step()
        out["torch"].append(param.detach().numpy().copy())
    return out


@pytest.mark.parametrize("case, name, options, lr, wd, start, grads, golden, tol", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_keras_golden_values_reproduced_by_every_twin(case, name, options, lr, wd, start, grads, golden, tol):
    runs = _twin_runs(name, options, lr, wd, start, grads)
    for backend, steps in runs.items():
        np.testing.assert_allclose(np.array(steps), np.array(golden, dtype=np.float64), rtol=tol, atol=tol, err_msg=f"{backend} {case}")
    np.testing.assert_allclose(runs["jax"], runs["numpy"], rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(runs["torch"], runs["numpy"], rtol=1e-15, atol=1e-15)
    keras = _keras_steps(name, options, lr, wd, start, grads)  # and Keras itself, in float64, on the same gradients
    np.testing.assert_allclose(runs["numpy"], keras, rtol=1e-14, atol=1e-15)


def _keras_steps(name, options, lr, wd, start, grads):
    import jax

    from xreg.backends.keras.run import load_keras

    keras = load_keras()
    before = keras.config.floatx()
    with jax.enable_x64(True):
        keras.config.set_floatx("float64")
        try:
            opt = getattr(keras.optimizers, optimizers.get(name).keras_class)(learning_rate=lr, weight_decay=wd or None, **options)
            var = keras.Variable(np.asarray(start, np.float64), dtype="float64")
            out = []
            for g in grads:
                opt.apply_gradients([(keras.ops.convert_to_tensor(np.asarray(g, np.float64)), var)])
                out.append(np.asarray(var.value))
        finally:
            keras.config.set_floatx(before)
    return np.array(out)


# ---- where each Keras rule parts from torch's namesake (the module docstrings' claims) -------------------------
def test_keras_sgd_momentum_is_torchs_until_the_lr_changes(default_data):
    common = {"options": {"momentum": 0.9}, "convention": "none", "lam": 0.0, "epochs": 20, "batch_size": 110}
    torch_rule = ExperimentSpec(optimizer="sgd", lr=0.05, **common)
    keras_rule = ExperimentSpec(optimizer="keras.sgd", lr=0.05, **common)
    assert max_gap(backends.train("torch", torch_rule, default_data), backends.train("keras", keras_rule, default_data)) < 1e-12
    step = {"schedule": "StepLR", "schedule_options": {"step_size": 50, "gamma": 0.1}, "schedule_every": "step"}
    a = backends.train("torch", torch_rule.replace(**step), default_data)
    b = backends.train("keras", keras_rule.replace(**step), default_data)
    gap = np.max(np.abs(a.flat - b.flat), axis=1)
    assert gap[:51].max() < 1e-12 and gap[51:].max() > 1e-4  # equal for the first 50 steps, apart from the first cut on


def test_keras_adam_and_rmsprop_are_not_torchs_rules_with_the_same_numbers(default_data):
    common = {"convention": "none", "lam": 0.0, "epochs": 10, "batch_size": 110, "lr": 0.01}
    pairs = [("adam", {"betas": (0.9, 0.999), "eps": 1e-7}, "keras.adam", {}),  # epsilon hat
             ("rmsprop", {"alpha": 0.9, "eps": 1e-7}, "keras.rmsprop", {})]  # eps inside the square root  # fmt: skip
    for t, to, k, ko in pairs:
        a = backends.train("torch", ExperimentSpec(optimizer=t, options=to, **common), default_data)
        b = backends.train("keras", ExperimentSpec(optimizer=k, options=ko, **common), default_data)
        assert max_gap(a, b) > 1e-9, (t, k)


# ---- the keras backend: how it is chosen, what it refuses --------------------------------------------------------
def test_keras_runs_on_jax_whatever_keras_backend_says_and_is_not_imported_unless_asked():
    probe = ("import sys; from xreg.cli import main; assert main(['--quiet', '--epochs', '2']) == 1; print('imported:', 'keras' in sys.modules); "
             "assert main(['--quiet', '--optimizer', 'keras.sgd', '--epochs', '2']) == 0; import keras; print('on:', keras.backend.backend())")  # fmt: skip
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    said = [ln for ln in out.stdout.splitlines() if ln.startswith(("imported:", "on:"))]
    assert said == ["imported: False", "on: jax"], out.stdout


def test_a_torch_rule_on_the_keras_backend_is_refused_with_the_reason(capsys):
    assert main(["--optimizer", "adam", "--backend", "keras", "--backend", "torch", "--epochs", "2"]) == 1
    out = capsys.readouterr().out
    assert "keras" in out and "'adam' is torch's rule" in out, out


# ---- the naive optax port of a Keras rule: the alias a porter writes, named where it differs -----------------------
@pytest.mark.parametrize("argv, cause", [
    (["--optimizer", "keras.adam"], "Keras's Adam puts epsilon outside the correction"),
    (["--optimizer", "keras.sgd", "--opt", "momentum=0.9", "--schedule", "StepLR(step_size=30)", "--schedule-every", "step"],
     "optax.sgd's trace keeps b <- mu*b + g"),
    (["--optimizer", "keras.rmsprop"], "optax.add_decayed_weights before optax.rmsprop"),
], ids=["adam-epsilon-hat", "sgd-velocity", "rmsprop-decay"])  # fmt: skip
def test_the_naive_optax_port_of_a_keras_rule_is_a_named_mismatch(argv, cause, capsys):
    assert main(["--lr", "0.01", "--lam", "0.01", "--epochs", "4", "--batch-size", "110", "--naive", *argv]) == 1
    out = capsys.readouterr().out
    assert "mismatch from step" in next(ln for ln in out.splitlines() if ln.startswith("jax/decoupled/naive")), out
    assert all(" match " in ln for ln in out.splitlines() if ln.startswith(("torch/decoupled", "numpy/decoupled", "jax/decoupled "))), out
    assert cause in out, out


def test_the_naive_port_of_plain_keras_sgd_is_exact(capsys):
    assert main(["--optimizer", "keras.sgd", "--lr", "0.05", "--lam", "0.01", "--epochs", "5", "--batch-size", "110", "--naive"]) == 0
    out = capsys.readouterr().out  # optax.sgd with the decay in the gradient is Keras's rule here, round-off apart
    assert " match " in next(ln for ln in out.splitlines() if ln.startswith("jax/decoupled/naive")), out
    assert "the stock optax alias is exact here" in out, out


def test_an_l2_term_in_the_keras_loss_is_the_twins_l2_sum(default_data):
    # keras.regularizers.L2(lam) is lam*sum(w^2) in the loss: the l2-sum convention, in every backend
    spec = _spec("keras.adam", {}, convention="l2-sum", epochs=10, schedule="constant", schedule_options={}, schedule_every="epoch")
    ref = backends.train("keras", spec, default_data)
    for b in ("torch", "jax", "numpy"):
        assert_same_run(ref, backends.train(b, spec, default_data), 1e-12, f"{b} l2-sum")
    assert max_gap(ref, backends.train("keras", spec.replace(lam=0.0), default_data)) > 1e-4


@pytest.mark.parametrize("name, options", [("keras.sgd", {"momentum": 0.9, "nesterov": True}), ("keras.rmsprop", {"momentum": 0.5})],
                         ids=["sgd-nesterov-momentum", "rmsprop-momentum"])  # fmt: skip
def test_the_twins_are_keras_on_keras_own_gradients(name, options):
    # the golden test's gradients with momentum on (Keras's own golden case has none): the twins against Keras itself
    grads = [G_FIRST] + [G_REST] * 4
    runs = _twin_runs(name, options, 0.01, 0.004, [1.0] * 10, grads)
    keras = _keras_steps(name, options, 0.01, 0.004, [1.0] * 10, grads)
    for backend, steps in runs.items():
        np.testing.assert_allclose(steps, keras, rtol=1e-14, atol=1e-15, err_msg=backend)
    assert np.max(np.abs(keras[-1] - keras[-1].mean())) > 1e-5  # the gradients' spread reaches the parameters (rmsprop evens it)


def test_gelu_tanh_is_kerass_approximate_gelu(default_data):
    from xreg.io import data

    digits = data.load("digits", model="mlp", standardize=True)
    spec = _spec("keras.adam", {}, model="mlp", hidden=(8,), activation="gelu-tanh", epochs=2, batch_size=256, lr=0.01)
    ref = backends.train("keras", spec, digits)
    assert_same_run(ref, backends.train("torch", spec, digits), 1e-12, "gelu-tanh")
    assert max_gap(ref, backends.train("keras", spec.replace(activation="gelu"), digits)) > 1e-6
