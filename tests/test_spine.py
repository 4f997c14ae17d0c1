"""Issue 7: the spine. Parameter trees, initial parameters, groups, structure vs hyperparameters (one
compilation), the step contract (replaying a recorded step), no global switches, the faces."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import max_gap
from xreg import backends, models
from xreg.analysis import agreement
from xreg.backends.jax import run as jax_run
from xreg.cli import main
from xreg.core.checks import XregInputError
from xreg.core.plan import make_plan
from xreg.core.spec import Dataset, ExperimentSpec
from xreg.core.structure import split
from xreg.io import data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def iris():
    return data.load("iris", model="mlp", standardize=True)


# ---- models: names and shapes follow torch ---------------------------------------------------------------
def test_parameter_names_and_shapes_are_torchs():
    for model, K, expect in [
        ("linear", 1, {"weight": (1, 5), "bias": (1,)}),
        ("logistic", 2, {"weight": (1, 5), "bias": (1,)}),
        ("softmax", 3, {"weight": (3, 5), "bias": (3,)}),
        ("mlp", 2, {"hidden.weight": (7, 5), "hidden.bias": (7,), "out.weight": (1, 7), "out.bias": (1,)}),
        ("mlp", 3, {"hidden.weight": (7, 5), "hidden.bias": (7,), "out.weight": (3, 7), "out.bias": (3,)}),
    ]:
        arch = models.architecture(model, 5, K, hidden=7 if model == "mlp" else None)
        assert arch.shapes == expect, model
        from xreg.backends.torch.run import build_module

        module = build_module(arch, torch.float64)
        assert {n: tuple(p.shape) for n, p in module.named_parameters()} == expect, model


def test_mlp_head_is_logistic_for_two_classes_and_softmax_for_more():
    assert models.architecture("mlp", 4, 2).head == "bce"
    assert models.architecture("mlp", 4, 3).head == "ce"
    assert models.architecture("softmax", 4, 2).head == "ce"


def test_backprop_by_hand_equals_autograd():
    """models.backward (what the NumPy backend uses) against torch.autograd on the same MLP."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((9, 4)), rng.integers(0, 3, 9).astype(float)
    for activation in ("tanh", "relu"):
        arch = models.architecture("mlp", 4, 3, hidden=5, activation=activation)
        params = {n: rng.standard_normal(s) for n, s in arch.shapes.items()}
        loss, grads = models.backward(arch, params, X, y, np)
        from xreg.backends.torch.run import build_module, loss_fn

        module = build_module(arch, torch.float64)
        with torch.no_grad():
            for n, p in module.named_parameters():
                p.copy_(torch.from_numpy(params[n]))
        t_loss = loss_fn(arch.head)(module(torch.from_numpy(X)), torch.from_numpy(y))
        t_loss.backward()
        assert loss == pytest.approx(t_loss.item(), abs=1e-14)
        for n, p in module.named_parameters():
            np.testing.assert_allclose(grads[n], p.grad.numpy(), rtol=0, atol=1e-14)


# ---- initial parameters -----------------------------------------------------------------------------------
def test_torch_init_is_nn_linear_default_bounds():
    arch = models.architecture("mlp", 64, 10, hidden=16)
    plan = make_plan(ExperimentSpec(model="mlp", seed=3, epochs=1), 10, arch)
    for name, fan_in in [("hidden.weight", 64), ("hidden.bias", 64), ("out.weight", 16), ("out.bias", 16)]:
        p = plan.params0[name]
        bound = 1 / np.sqrt(fan_in)
        assert np.all(np.abs(p) <= bound) and np.max(np.abs(p)) > 0.8 * bound, name
    # drawn in NumPy from the seed, weight then bias, layer by layer, before the batch order
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(plan.params0["hidden.weight"], rng.uniform(-1 / 8, 1 / 8, (16, 64)))


def test_mlp_defaults_to_torch_init_the_others_to_zeros():
    assert ExperimentSpec(model="mlp").init == "torch"
    assert ExperimentSpec(model="softmax").init == "zeros"


def test_init_from_lists_every_problem_in_one_error(tmp_path, iris):
    path = tmp_path / "bad.npz"
    np.savez(path, **{"hidden.weight": np.zeros((16, 3)), "out.bias": np.zeros(3), "extra": np.zeros(2)})
    spec = ExperimentSpec(model="mlp", init_from=str(path), epochs=2)
    with pytest.raises(XregInputError) as exc:
        backends.train("numpy", spec, iris)
    msg = str(exc.value)
    for part in ["missing 'hidden.bias' (16,)", "missing 'out.weight' (3, 16)", "unexpected 'extra'",
                 "'hidden.weight' has shape (16, 3), the model needs (16, 4)"]:  # fmt: skip
        assert part in msg, msg


def _plain_torch_mlp_adam(params0, X, y, order, batch, lr, wd, epochs):
    """What a torch user writes: nn.Module with hidden/out, Adam(weight_decay), minibatches, their own loop."""
    torch_X, torch_y = torch.from_numpy(X), torch.from_numpy(y).long()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = torch.nn.Linear(X.shape[1], 16, dtype=torch.float64)
            self.out = torch.nn.Linear(16, 3, dtype=torch.float64)

        def forward(self, x):
            return self.out(torch.tanh(self.hidden(x)))

    net = Net()
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(torch.from_numpy(params0[n]))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=wd)
    for epoch in range(epochs):
        perm = order[epoch]
        for lo in range(0, len(perm), batch):
            rows = torch.from_numpy(perm[lo : lo + batch])
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(torch_X[rows]), torch_y[rows]).backward()
            opt.step()
    return {n: p.detach().numpy() for n, p in net.named_parameters()}


def test_init_from_gives_the_plain_torch_loop_and_minibatch_mlp_adam_agrees(tmp_path, iris):
    """MLP + Adam, batches of 32 (short last batch), reshuffled every epoch, started from a .npz."""
    rng = np.random.default_rng(11)
    arch = models.architecture("mlp", 4, 3, hidden=16)
    params0 = {n: rng.standard_normal(s) * 0.3 for n, s in arch.shapes.items()}
    path = tmp_path / "start.npz"
    np.savez(path, **params0)
    spec = ExperimentSpec(model="mlp", optimizer="adam", lr=0.01, lam=0.01, epochs=100, batch_size=32,
                          shuffle=True, seed=5, init_from=str(path))  # fmt: skip
    assert iris.n_train % 32 != 0  # 120 rows: 3 batches of 32 and one of 24
    runs = {b: backends.train(b, spec, iris) for b in backends.NAMES}
    ref = runs["torch"]
    assert ref.steps == 400
    for b in ("jax", "numpy"):
        assert max_gap(ref, runs[b]) <= 1e-12, b
    order = np.stack([np.random.default_rng(5).permutation(120) for _ in range(1)])  # documented rule, epoch 0
    plan = make_plan(spec, iris.n_train, arch)
    np.testing.assert_array_equal(plan.order[0], order[0])
    plain = _plain_torch_mlp_adam(params0, iris.X_train, iris.y_train, plan.order, 32, 0.01, 0.01, 100)
    for n in arch.names:
        np.testing.assert_array_equal(ref.final_params[n], plain[n])  # bit-identical to the user's loop


# ---- groups --------------------------------------------------------------------------------------------
def test_group_decay_and_no_decay_patterns(iris):
    base = ExperimentSpec(model="mlp", optimizer="sgd", lr=0.1, lam=0.05, epochs=200, options={"momentum": 0.9})
    grouped = base.replace(group_decay=(("out.*", 0.5),), no_decay=("bias",))
    runs = {b: backends.train(b, grouped, iris) for b in backends.NAMES}
    for b in ("jax", "numpy"):
        assert max_gap(runs["torch"], runs[b]) <= 1e-12, b
    # a group of strength 0 is the same run as leaving it out
    zero = backends.train("torch", base.replace(group_decay=(("bias", 0.0),)), iris)
    none = backends.train("torch", base.replace(no_decay=("bias",)), iris)
    assert max_gap(zero, none) == 0.0
    # and the groups really differ from one strength for all
    assert max_gap(runs["torch"], backends.train("torch", base, iris)) > 1e-3
    s, hp = split(grouped, iris)
    assert s.groups == (("lam", ("hidden.weight",)), ("out.*", ("out.weight",)))
    assert hp["decay"] == {"lam": 0.05, "out.*": 0.5}


def test_group_decay_by_hand_one_sgd_step():
    """Linear model, w = b = 1, x = [2, 4], y = [7, 11], lr 0.1: dL/dw = -32, dL/db = -10.
    lam = 1 on the weight, 0.5 on the bias: w = 1 - 0.1*(-32 + 1) = 4.1, b = 1 - 0.1*(-10 + 0.5) = 1.95."""
    ds = Dataset("worked", np.array([[2.0], [4.0]]), np.array([7.0, 11.0]), np.zeros((0, 1)), np.zeros(0), ("x",))
    spec = ExperimentSpec(model="linear", lr=0.1, lam=1.0, epochs=1, init="constant", init_scale=1.0,
                          group_decay=(("bias", 0.5),))  # fmt: skip
    for b in backends.NAMES:
        np.testing.assert_allclose(backends.train(b, spec, ds).flat[-1], [4.1, 1.95], rtol=0, atol=1e-14)


def test_a_pattern_that_matches_nothing_is_an_error(iris):
    with pytest.raises(XregInputError, match="matches no parameter of the mlp model"):
        split(ExperimentSpec(model="mlp", no_decay=("gamma",)), iris)


# ---- structure apart from hyperparameters: one compilation -------------------------------------------------
def test_runs_differing_only_in_lr_and_lam_compile_once(default_data):
    jax_run.program.cache_clear()
    jax_run.TRACES.clear()
    spec = ExperimentSpec(optimizer="adam", lr=0.01, lam=0.05, epochs=30)
    a = backends.train("jax", spec, default_data)
    b = backends.train("jax", spec.replace(lr=0.02, lam=0.5, options={"betas": (0.8, 0.9)}), default_data)
    assert sum(jax_run.TRACES.values()) == 1
    assert max_gap(a, b) > 1e-3  # the second run really used its own numbers ...
    torch_b = backends.train("torch", spec.replace(lr=0.02, lam=0.5, options={"betas": (0.8, 0.9)}), default_data)
    assert max_gap(b, torch_b) <= 1e-12  # ... and the right ones
    backends.train("jax", spec.replace(options={"amsgrad": True}), default_data)  # a flag is structure
    assert sum(jax_run.TRACES.values()) == 2


# ---- the step contract ----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", backends.NAMES)
def test_replaying_a_recorded_step_gives_the_next_one(backend, iris):
    """Record a run with torch (the reference), rebuild the backend's state at step k with init + k steps,
    then replay step k: it gives the recorded step k+1 to round-off, and the state is left untouched."""
    spec = ExperimentSpec(model="mlp", optimizer="nadam", lr=0.01, lam=0.01, epochs=5, batch_size=40, shuffle=True,
                          seed=2, schedule="exponential", schedule_options={"gamma": 0.9})  # fmt: skip
    recorded = backends.train("torch", spec, iris)
    mod = backends.load(backend)
    s, hp = split(spec, iris)
    plan = make_plan(spec, iris.n_train, s.arch)
    batches = list(plan.data_batches(iris.X_train, iris.y_train))
    k = 7  # in epoch 2: the schedule has moved once
    state = mod.init(s, hp, recorded.at(0))
    for batch in batches[:k]:
        state = mod.step(state, batch, hp)
    for n, p in mod.params_of(state).items():
        np.testing.assert_allclose(p, recorded.at(k)[n], rtol=0, atol=1e-13)
    before = {n: p.copy() for n, p in mod.params_of(state).items()}
    nxt = mod.step(state, batches[k], hp)
    again = mod.step(state, batches[k], hp)
    for n, p in mod.params_of(nxt).items():
        np.testing.assert_allclose(p, recorded.at(k + 1)[n], rtol=0, atol=1e-13)
        np.testing.assert_array_equal(p, mod.params_of(again)[n])  # pure: the same state steps the same way
        np.testing.assert_array_equal(mod.params_of(state)[n], before[n])


# ---- no global switches ----------------------------------------------------------------------------------
def test_no_process_wide_switches(default_data, tmp_path):
    import jax

    spec = ExperimentSpec(optimizer="nadam", lr=0.01, epochs=5)
    for b in backends.NAMES:
        backends.train(b, spec, default_data)
    assert jax.config.jax_enable_x64 is False  # float64 only inside the JAX backend's calls
    assert torch.get_default_dtype() == torch.float32
    assert (jax.numpy.zeros(1) + 1).dtype == np.float32
    files = {p: p.read_text() for p in (ROOT / "xreg").rglob("*.py")}
    src = "\n".join(files.values())
    for switch in ("jax_enable_x64\", True", "os.umask", "matplotlib.use(", "import matplotlib.pyplot"):
        assert switch not in src, switch
    # torch's default dtype is set only inside the torch backend's calls, as JAX's x64 is inside JAX's, and restored
    setters = [p.relative_to(ROOT).as_posix() for p, text in files.items() if "set_default_dtype(" in text]
    assert setters == ["xreg/backends/torch/run.py"], setters
    text = files[ROOT / "xreg/backends/torch/run.py"]
    assert text.count("set_default_dtype(") == 2 and "finally:\n        torch.set_default_dtype(before)" in text


def test_no_backend_cli_or_report_branches_on_a_convention_name():
    proc = subprocess.run(["grep", "-rn", "convention ==", "xreg/backends", "xreg/cli", "xreg/report"], cwd=ROOT,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == "", proc.stdout


# ---- faces -------------------------------------------------------------------------------------------------
def _py(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)


def test_python_m_xreg_subcommands_version_and_help():
    from xreg import __version__

    assert _py("-m", "xreg", "--version").stdout.strip() == f"xreg {__version__}"
    top = _py("-m", "xreg", "--help").stdout
    assert "compare" in top and "explain" in top
    helptext = _py("-m", "xreg", "compare", "--help").stdout
    assert "(default: 0.05)" in helptext and "(default: 1000)" in helptext
    assert "torch.optim.AdamW(" in _py("-m", "xreg", "explain", "adamw").stdout
    bad = _py("-m", "xreg", "frobnicate")
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown command")


def test_console_script_and_old_entry_point(tmp_path):
    script = Path(sys.executable).with_name("xreg")
    assert script.exists(), "pip install -e . installs the xreg console script"
    out = tmp_path / "r.json"
    proc = subprocess.run([str(script), "compare", "--epochs", "3", "--backend", "numpy", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["model"]["parameters"] == {"weight": [1, 4], "bias": [1]}
    old = _py("-m", "xreg.compare", "--epochs", "3", "--backend", "numpy")
    assert old.returncode == 0 and "numpy/coupled" in old.stdout


def test_mlp_on_digits_through_the_cli(tmp_path, capsys):
    out = tmp_path / "mlp.json"
    code = main(["compare", "--data", "digits", "--standardize", "--model", "mlp", "--hidden", "8", "--activation",
                 "relu", "--optimizer", "adam", "--lr", "0.01", "--lam", "0.001", "--no-decay", "bias", "--epochs", "20",
                 "--backend", "torch", "--backend", "jax", "--backend", "numpy", "--json", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr()
    doc = json.loads(out.read_text())
    final = doc["runs"][0]["final_params"]
    assert np.shape(final["hidden.weight"]) == (8, 64) and np.shape(final["out.bias"]) == (10,)
    assert doc["spec"]["no_decay"] == ["bias"] and doc["model"]["head"] == "ce"
    assert "decay(lam, clipped gradient)" in doc["runs"][0]["recipe"]


# ---- datasets ------------------------------------------------------------------------------------------
def test_shipped_datasets_and_standardize_uses_the_training_split_only():
    for name, (rows, d, K) in {"digits": (1797, 64, 10), "iris": (150, 4, 3), "wine": (178, 13, 3),
                               "breast_cancer": (569, 30, 2)}.items():  # fmt: skip
        ds = data.load(name, model="softmax")
        assert (ds.n_train + len(ds.y_test), ds.n_features, ds.n_classes) == (rows, d, K), name
    raw = data.load("wine", model="softmax")
    std = data.load("wine", model="softmax", standardize=True)
    mean, sd = raw.X_train.mean(axis=0), raw.X_train.std(axis=0)
    np.testing.assert_allclose(std.X_train, (raw.X_train - mean) / sd, rtol=1e-14)
    np.testing.assert_allclose(std.X_test, (raw.X_test - mean) / sd, rtol=1e-14)  # the training split's stats
    assert np.max(np.abs(std.X_test.mean(axis=0))) > 1e-3


def test_csv_with_classes_delimiter_and_drop(tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("id;x1;x2;label\n" + "".join(f"{i};{i % 5};{(i * 7) % 3};{i % 3}\n" for i in range(30)))
    ds = data.load(str(path), "label", model="softmax", delimiter=";", drop=("id",), test_fraction=0)
    assert ds.feature_names == ("x1", "x2") and ds.n_classes == 3 and ds.n_train == 30
    with pytest.raises(XregInputError, match="The column to drop 'nope' is not in"):
        data.load(str(path), "label", model="softmax", delimiter=";", drop=("nope",))
    with pytest.raises(XregInputError, match="The logistic model needs two classes; the labels hold 3"):
        data.load(str(path), "label", model="logistic", delimiter=";")
    mapped = tmp_path / "labels.csv"
    mapped.write_text("x,label\n" + "".join(f"{i},{[5, 7, 9][i % 3]}\n" for i in range(9)))
    with pytest.raises(XregInputError, match="Pass --map-labels to map 5 -> 0, 7 -> 1 and 9 -> 2"):
        data.load(str(mapped), "label", model="softmax")
    ds = data.load(str(mapped), "label", model="softmax", map_labels=True, test_fraction=0)
    assert list(ds.y_train[:3]) == [0.0, 1.0, 2.0]


def test_compare_pair_works_on_trees(iris):
    spec = ExperimentSpec(model="softmax", epochs=3)
    a, b = backends.train("torch", spec, iris), backends.train("numpy", spec, iris)
    assert a.flat.shape == (4, 3 * 4 + 3) and agreement.compare_pair(a, b).verdict == "match"
