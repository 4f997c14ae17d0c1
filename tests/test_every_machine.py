"""Issue 20, trust on every machine: float32 starts, the recorder's dtype, torch's own option names, printed
equivalents that stay in float64's range, and hostile input (one ``error:`` line, the documented exit
status, nothing left behind). Muon's kernel probe and floor are in test_muon.py; golden outputs compare
at the digits that hold on every CPU (helpers.assert_same_text)."""

import json
import zipfile
import io

import numpy as np
import pytest
import torch

from user_loops import problem, torch_loop
from xreg import backends
from xreg.analysis import diagnose as dg
from xreg.cli import main
from xreg.core.spec import ExperimentSpec
from xreg.io import data


def one_error(capsys, code, argv, said):
    assert main(argv) == code
    cap = capsys.readouterr()
    lines = cap.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], cap.err
    return cap


# ---- float32: every backend records the start it computed from ----------------------------------------------
def test_a_float32_run_starts_from_its_float32_rounding(capsys):
    argv = ["--data", "iris", "--model", "mlp", "--dtype", "float32", "--epochs", "5", "--backend", "torch",
            "--backend", "jax", "--convention", "torch", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().out
    iris = data.load("iris", None, model="mlp")
    spec = ExperimentSpec(model="mlp", dtype="float32", epochs=1)
    from xreg.core.plan import make_plan
    from xreg.core.structure import architecture

    p0 = make_plan(spec, iris.n_train, architecture(spec, iris)).params0
    for b in backends.NAMES:
        run = backends.train(b, spec, iris)
        for n, p in p0.items():  # row 0 is params0 rounded to float32, not the float64 numbers
            np.testing.assert_array_equal(run.params[n][0], p.astype(np.float32).astype(np.float64), err_msg=f"{b} {n}")


# ---- TorchRecorder: the model's dtype; a float32 pair that differs in row order only is round-off ------------
def test_torch_recorder_records_a_float32_models_dtype(default_data):
    X, y, w0, b0 = problem(default_data, rows=200)
    make = lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.01)  # noqa: E731
    A = torch_loop(X, y, w0, b0, make, 40, dtype="float32")
    B = torch_loop(X[::-1].copy(), y[::-1].copy(), w0, b0, make, 40, dtype="float32")  # the same rows, summed reversed
    assert A.meta["dtype"] == B.meta["dtype"] == "float32"
    d = dg.diagnose(A, B)
    assert d.dtype == "float32" and d.first_divergence_step is None and not d.differs, (d.stage, d.cause)
    import dataclasses

    wrong = dataclasses.replace(A, meta={**A.meta, "dtype": "float64"})  # what the recorder wrote before
    assert dg.diagnose(wrong, dataclasses.replace(B, meta={**B.meta, "dtype": "float64"})).first_divergence_step is not None


def test_log_loss_takes_the_loss_tensor_as_the_readme_shows():
    from xreg.record import TorchRecorder

    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = TorchRecorder(model, opt)
    loss = model(torch.ones(4, 3)).pow(2).mean()
    loss.backward()
    rec.log_loss(loss)  # requires grad: no warning (the suite turns warnings into errors)
    opt.step()
    assert rec.run().loss[0] == pytest.approx(loss.item())


# ---- options as torch spells them -----------------------------------------------------------------------------
def test_decoupled_weight_decay_is_convention_decoupled(capsys):
    base = ["--optimizer", "adam", "--epochs", "5", "--backend", "numpy", "--json", "-", "--quiet"]
    assert main(base + ["--opt", "decoupled_weight_decay=true"]) == 0
    torch_flag = json.loads(capsys.readouterr().out)
    assert main(base + ["--convention", "decoupled"]) == 0
    convention = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in torch_flag["runs"]] == [r["label"] for r in convention["runs"]] == ["numpy/decoupled"]
    one_error(capsys, 2, ["--opt", "decoupled_weight_decay=true", "--epochs", "2"], "torch.optim.SGD has no decoupled_weight_decay")
    one_error(capsys, 2, base[:4] + ["--opt", "decoupled_weight_decay=true", "--convention", "torch"], "is --convention decoupled")


# ---- translate: torch's default weight decay, equivalents within float64 ----------------------------------------
def test_translate_takes_torchs_default_weight_decay(capsys):
    assert main(["translate", "--from", "torch.adamw", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["weight_decay"] == 0.01


@pytest.mark.parametrize("wd", ["1e308", "1e-320"])
def test_translate_refuses_a_weight_decay_whose_equivalents_overflow(wd, capsys):
    one_error(capsys, 2, ["translate", "--from", "torch.sgd", "--weight-decay", wd, "--n", "1096"], "leave float64's range")


def test_json_writes_non_finite_numbers_as_text():
    from xreg.cli.common import finite_json

    assert json.loads(json.dumps(finite_json({"a": [float("inf"), -float("inf"), float("nan"), 1.5]}))) == {"a": ["inf", "-inf", "nan", 1.5]}


# ---- .npz files: foreign, truncated, oversized, complex ------------------------------------------------------
def _header_only(path, shape):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.npy", buf.getvalue() + b"\0" * 64)


@pytest.fixture(scope="module")
def npz_dir(tmp_path_factory, default_data):
    d = tmp_path_factory.mktemp("npz")
    X, y, w0, b0 = problem(default_data, rows=50)
    run = torch_loop(X, y, w0, b0, lambda p: torch.optim.SGD(p, lr=0.1), 3)
    from xreg.io import trajfile

    trajfile.save(d / "good.npz", run)
    (d / "truncated.npz").write_bytes((d / "good.npz").read_bytes()[:3000])
    _header_only(d / "huge.npz", (10**6, 10**6))
    np.savez(d / "complex.npz", weight=np.array([[1 + 2j]]))
    np.savez(d / "empty.npz")
    (d / "text.npz").write_text("not a zip")
    return d


@pytest.mark.parametrize("name, said", [
    ("truncated.npz", "is not a readable .npz file"), ("huge.npz", "GiB, beyond what the file holds"),
    ("complex.npz", "holds complex128 values"), ("empty.npz", "no 'params/<name>' arrays"), ("text.npz", "not a zip file"),
    ("/dev/null", "not a regular file"), ("missing.npz", "does not exist"),
])  # fmt: skip
def test_a_bad_trajectory_file_is_one_error(name, said, npz_dir, capsys):
    path = name if name.startswith("/") else str(npz_dir / name)
    one_error(capsys, 2, ["diagnose", path, str(npz_dir / "good.npz")], said)


def test_a_bad_parameter_file_is_one_error(npz_dir, capsys):
    one_error(capsys, 2, ["--init-from", str(npz_dir / "huge.npz"), "--epochs", "2"], "GiB, beyond what the file holds")


# ---- figures ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["p.pdf", "p", "p.jpeg"])
def test_plot_takes_png_or_svg(path, tmp_path, capsys):
    one_error(capsys, 2, ["--epochs", "2", "--backend", "numpy", "--plot", str(tmp_path / path)], "--plot takes PATH.png or PATH.svg")
    assert list(tmp_path.iterdir()) == []


def test_svg_is_the_same_bytes_every_run_and_report_suffix_in_any_case(tmp_path):
    argv = ["--epochs", "3", "--backend", "numpy", "--backend", "torch", "--quiet"]
    assert main(argv + ["--plot", str(tmp_path / "a.svg"), "--report", str(tmp_path / "r.HTML")]) == 0
    assert main(argv + ["--plot", str(tmp_path / "b.svg")]) == 0
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert (tmp_path / "r.HTML").read_text().lstrip().lower().startswith("<!doctype html")


# ---- scenarios ---------------------------------------------------------------------------------------------
def test_a_scenario_expecting_a_run_it_does_not_make_is_bad_input(tmp_path, capsys):
    sc = tmp_path / "s.toml"
    sc.write_text('title = "t"\nsummary = "s"\n[compare]\nepochs = 2\nbackend = ["numpy"]\n'
                  '[[expect]]\na = "numpy/coupled"\nb = "jax/nope"\nverdict = "match"\nwhy = "w"\n')  # fmt: skip
    assert main(["compare", str(sc)]) == 2
    assert "names the pair numpy/coupled vs jax/nope" in capsys.readouterr().err


# ---- the Markdown report escapes what the user named ---------------------------------------------------------
def test_markdown_report_escapes_the_data_name(tmp_path, default_data):
    from conftest import write_csv

    csv = write_csv(tmp_path / "<img src=x onerror=alert(1)>[l](javascript:alert(1)).csv", default_data.X_train[:60],
                    default_data.y_train[:60])  # fmt: skip
    md = tmp_path / "r.md"
    assert main(["--data", str(csv), "--target", "label", "--epochs", "2", "--backend", "numpy", "--report", str(md), "--quiet"]) == 0
    text = md.read_text()
    assert "<img src=x" not in text and "](javascript:" not in text and "&lt;img src=x onerror=alert\\(1\\)&gt;" in text


# ---- data that never ends, closed streams, a narrow locale, sizes before allocation ----------------------------
def _xreg(*args, **kw):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "xreg", *args], capture_output=True, text=True, timeout=120, **kw)


def test_a_device_a_link_to_it_or_a_fifo_is_not_read(tmp_path, capsys):
    import os

    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.csv")
    for path in ("/dev/zero", tmp_path / "zero.csv", tmp_path / "fifo.csv"):
        one_error(capsys, 2, ["--data", str(path), "--target", "y", "--epochs", "2"], "is not a regular file")


def test_closed_stdout_and_an_ascii_locale(tmp_path):
    import os
    import subprocess
    import sys

    import shlex

    cmd = f"exec {shlex.quote(sys.executable)} -m xreg --epochs 2 --backend numpy >&-"  # the shell closes stdout
    p = subprocess.run(["sh", "-c", cmd], stderr=subprocess.PIPE, text=True, timeout=120)
    assert p.returncode == 141 and p.stderr.startswith("error: standard output is closed"), p.stderr
    p = _xreg("--epochs", "2", "--backend", "numpy", env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert p.returncode == 0 and "numpy/coupled" in p.stdout and p.stderr == "", p.stderr


def test_sweep_count_is_bounded_before_allocation_and_json_dash_is_stdout(tmp_path, capsys, monkeypatch):
    one_error(capsys, 2, ["sweep", "--sweep", "lr=0.1:1:1000000000000000", "--epochs", "2"], "more than the 1e+06 points")
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "--sweep", "lr=0.1:1:2", "--epochs", "2", "--json", "-"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["xreg_sweep_version"] == 1 and "data: default" in cap.err
    assert list(tmp_path.iterdir()) == []  # no file named '-'


# ---- scenario files: bounded, never granting outputs or --force, paths beside the file, found by name -----------
def _scenario(tmp_path, body, expect='[[expect]]\na = "numpy/coupled"\nb = "numpy/l2-loss"\nverdict = "match"\nwhy = "w"\n'):
    path = tmp_path / "s.toml"
    path.write_text('title = "t"\nsummary = "s"\n' + body + expect)
    return path


@pytest.mark.parametrize("body, said", [
    ("[compare]\nx = " + "[" * 5000 + "]" * 5000 + "\n", "nests its arrays or tables too deeply"),
    ("expect = 3\n", "'expect' must be a list"),
    ('[compare]\nepochs = 2\njson = "out.json"\nforce = true\n', "it sets --force, --json"),
    ("[compare]\nlist = true\n", "it sets --list"),
    ('[compare]\nexplain = "adam"\n', "it sets --explain"),
])  # fmt: skip
def test_a_scenario_file_that_cannot_be_one(body, said, tmp_path, capsys):
    expect = "" if body.startswith("expect") else None
    path = _scenario(tmp_path, body, *(() if expect is None else (expect,)))
    one_error(capsys, 2, ["compare", str(path)], said)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.toml"]  # nothing written


def test_a_scenario_reads_its_files_beside_it_and_a_shipped_one_by_name(tmp_path, capsys, monkeypatch, default_data):
    from conftest import write_csv

    folder = tmp_path / "cases"
    folder.mkdir()
    write_csv(folder / "d.csv", default_data.X_train[:80], default_data.y_train[:80])
    path = _scenario(folder, '[compare]\nepochs = 3\ndata = "d.csv"\ntarget = "label"\nbackend = ["numpy"]\n'
                     'convention = ["torch", "l2-loss"]\n')  # fmt: skip
    monkeypatch.chdir(tmp_path)  # not the scenario's folder
    assert main(["compare", str(path)]) == 0
    assert "ok   numpy/coupled vs numpy/l2-loss" in capsys.readouterr().out
    assert main(["compare", "classic_logistic", "--epochs", "3", "--json", "-"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["xreg_json"] == 1 and cap.err.startswith("scenario classic_logistic")  # the title on stderr
    one_error(capsys, 2, ["compare", "classic_logistic", "--epochs", "3", "--backend", "numpy"], "names the pair torch/coupled vs")
    one_error(capsys, 2, ["--epochs", "2", "--list"], "--list lists the shipped scenarios and takes no other flag")


# ---- the user's update function: its exit, its prints, a tensor that requires grad ------------------------------
@pytest.mark.parametrize("body, said", [
    ("import sys\nsys.exit(0)\n", "your code called sys.exit(0)"),
    ("import sys\ndef step(b, X, y, lr, lam):\n    sys.exit(0)\n", "at step 1, your code called sys.exit(0)"),
])  # fmt: skip
def test_an_update_that_exits_is_bad_input(body, said, tmp_path, capsys):
    (tmp_path / "u.py").write_text(body)
    one_error(capsys, 2, ["diagnose", "--update", f"{tmp_path / 'u.py'}:step", "--lr", "0.05", "--lam", "0.1"], said)
    one_error(capsys, 2, ["diagnose", "--update", f"{tmp_path}:step"], "is not a file")


def test_an_update_returning_a_grad_tensor_and_printing_keeps_stdout_json(tmp_path, capsys):
    (tmp_path / "u.py").write_text("import numpy as np, torch\ndef step(b, X, y, lr, lam):\n    print('step')\n"
                                   "    p = 1 / (1 + np.exp(-(X @ b[1:] + b[0])))\n"
                                   "    g = np.concatenate([[np.mean(p - y)], X.T @ (p - y) / len(y)]) + lam * b\n"
                                   "    return torch.tensor(b - lr * g, requires_grad=True) * 1.0\n")  # fmt: skip
    code = main(["diagnose", "--update", f"{tmp_path / 'u.py'}:step", "--lr", "0.05", "--lam", "0.1", "--json", "-"])
    cap = capsys.readouterr()
    doc = json.loads(cap.out)
    assert code == 0 and doc["convention"] == "coupled" and doc["lam"] == pytest.approx(0.1) and "step" in cap.err


# ---- diagnose: higher-rank layouts, different starts, degenerate parameters ---------------------------------------
def _runs(T=5, seed=0):
    from xreg.io.trajfile import RecordedRun, check

    rng = np.random.default_rng(seed)
    K = rng.standard_normal((T + 1, 8, 4, 3, 3))  # torch's OIHW conv kernel over the steps
    fc = rng.standard_normal((T + 1, 2, 3))
    A = check(RecordedRun({"conv1.weight": K, "fc.weight": fc}, None, None, None, {"framework": "torch"}))
    B = check(RecordedRun({"conv1.kernel": np.transpose(K, (0, 3, 4, 2, 1)), "fc.weight": fc}, None, None, None, {}))
    return A, B


def test_a_hwio_kernel_aligns_with_oihw_by_start_and_by_map():
    A, B = _runs()
    for mapping in (None, {"conv1.weight": "conv1.kernel"}):
        d = dg.diagnose(A, B, mapping=mapping)
        assert d.first_divergence_step is None and not d.differs
        assert d.alignment == [f"conv1.weight <-> conv1.kernel (by {'map' if mapping else 'initial value'}, axes (3, 2, 0, 1))"]


def test_runs_from_different_starts_are_their_own_finding(tmp_path, capsys):
    from xreg.io import trajfile
    from xreg.io.trajfile import RecordedRun

    A, B = _runs()
    moved = RecordedRun({**B.params, "fc.weight": B.params["fc.weight"] + 0.5}, None, None, None, {})
    d = dg.diagnose(A, moved)  # no grads recorded: still the start, not an empty search
    assert (d.stage, d.cause, d.first_divergence_step) == ("start", "different-start", 0) and d.differs
    assert "'fc.weight'" in d.evidence and "same parameters" in d.fix["b"]
    trajfile.save(tmp_path / "a.npz", A)
    trajfile.save(tmp_path / "b.npz", moved)
    assert main(["diagnose", str(tmp_path / "a.npz"), str(tmp_path / "b.npz")]) == 1
    assert "start from different parameters" in capsys.readouterr().out


def test_one_number_and_empty_parameters_are_diagnosed():
    from xreg.io.trajfile import RecordedRun, check

    Z = check(RecordedRun({"scale": np.zeros(6), "empty": np.zeros((6, 0))}, None, None, None, {}))
    assert dg.diagnose(Z, Z).first_divergence_step is None


# ---- the Python API: one clear error for what it cannot record or compare ------------------------------------------
@pytest.mark.parametrize("params, said", [
    ({"a.b": np.ones(2), "a": {"b": np.ones(2)}}, "both named 'a.b'"),
    ({"a": None}, "'a' is None"),
    ({"a": np.array([1j])}, "holds complex numbers"),
])  # fmt: skip
def test_recorder_refuses_what_it_cannot_record(params, said):
    from xreg.core.checks import XregInputError
    from xreg.record import Recorder

    with pytest.raises(XregInputError, match=said):
        Recorder().log(params)


def test_recorder_shapes_scalars_and_meta():
    from xreg.core.checks import XregInputError
    from xreg.record import Recorder

    r = Recorder()
    r.log({"w": np.ones(2)})
    with pytest.raises(XregInputError, match="changed shape: \\(2,\\) at the start, \\(3,\\) at step 1"):
        r.log({"w": np.ones(3)}, lr=0.1)
    r.log({"w": np.ones(2)}, lr=np.array([0.1]), loss=torch.tensor(0.5, requires_grad=True))
    assert r.run().lr.tolist() == [0.1] and r.run().loss.tolist() == [0.5]
    with pytest.raises(XregInputError, match="lr must be one real number"):
        r.log({"w": np.ones(2)}, lr=np.array([0.1, 0.2]), loss=0.5)
    with pytest.raises(XregInputError, match="meta is saved as JSON"):
        Recorder(meta={"model": object()})


@pytest.mark.parametrize("a, b, kw, said", [
    ({}, {}, {}, "holds no parameters"),
    ({"w": np.array(1.0)}, {"w": np.array(1.0)}, {}, "is one number"),
    ({"w": np.ones((3, 2))}, {"w": np.ones((3, 2))}, {"dtype": "float8"}, "dtype must be"),
])  # fmt: skip
def test_assert_trajectories_close_refuses_what_is_not_a_run(a, b, kw, said):
    from xreg.testing import assert_trajectories_close

    with pytest.raises(ValueError, match=said):
        assert_trajectories_close(a, b, **kw)


def test_assert_trajectories_close_nan_alike_different_starts_and_recorded_layouts():
    from xreg.testing import assert_trajectories_close

    nan = np.full((3, 2), np.nan)
    assert_trajectories_close({"w": nan}, {"w": nan.copy()})  # both diverged alike
    with pytest.raises(AssertionError, match="at step 0: .* they start from different parameters"):
        assert_trajectories_close({"w": np.zeros((3, 2))}, {"w": np.ones((3, 2))})
    A, B = _runs()
    assert_trajectories_close(A, B)  # other names, an HWIO kernel: aligned as diagnose aligns


# ---- diagnose's plain-SGD fit, and a meta that states a rule xreg cannot read ---------------------------------------
def test_the_plain_sgd_fit_finds_the_rule_when_no_meta_states_one(default_data):
    """A scratch loop against a torch loop whose meta was stripped: neither states its rule, so diagnose fits
    plain SGD's per-parameter coefficient from the recorded grads and lr (planted and caught: the fit's
    least-squares sign flipped)."""
    import dataclasses

    from user_loops import scratch_loop

    X, y, w0, b0 = problem(default_data, rows=200)
    A = torch_loop(X, y, w0, b0, lambda p: torch.optim.SGD(p, lr=0.5, weight_decay=0.1), 30)
    A = dataclasses.replace(A, meta={"framework": "numpy"})  # no optimizer, no groups
    B = scratch_loop(X, y, w0, b0, 0.5, 0.1, 30)
    d = dg.diagnose(A, B)
    assert d.cause == "decay-scale" and d.base_rule == "SGD(coupled decay 0.1), a plain-SGD fit"
    assert d.ranking[0]["number"] == pytest.approx(1 / 200, rel=1e-6)  # lam vs lam/m, found without any meta


@pytest.mark.parametrize("meta, said", [
    ({"optimizer": "Lion", "groups": [{"params": ["weight"], "lr": 0.1}]}, "names the optimizer 'Lion'"),
    ({"optimizer": "SGD", "groups": [1]}, "'groups' must be a list of param groups"),
    ({"optimizer": "SGD", "groups": [{"params": ["weight"], "lr": 0.1, "weight_decay": None}]}, "'weight_decay' must be a finite number"),
    ({"optimizer": "SGD", "groups": [{"params": ["weight"], "lr": 0.1, "momentum": 2.0}]}, "a value torch would refuse"),
])  # fmt: skip
def test_a_meta_that_states_a_rule_badly_is_named(meta, said, default_data):
    import dataclasses

    from xreg.core.checks import XregInputError

    X, y, w0, b0 = problem(default_data, rows=100)
    A = torch_loop(X, y, w0, b0, lambda p: torch.optim.SGD(p, lr=0.5, weight_decay=0.1), 10)
    B = torch_loop(X, y, w0, b0, lambda p: torch.optim.SGD(p, lr=0.5, weight_decay=0.2), 10)
    with pytest.raises(XregInputError, match=said):
        dg.diagnose(dataclasses.replace(A, meta={**meta, "framework": "torch"}), B)


# ---- no cause without its re-simulation: clipping order, clipping, loss scale ------------------------------------------
@pytest.fixture(scope="module")
def clip_prob(default_data):
    return problem(default_data, rows=200)


def test_a_clip_order_difference_is_named_and_its_fixes_rerun_to_a_match(clip_prob):
    """Decay added before clip_grad_norm_ in one loop, torch's weight_decay after it in the other: today's
    one-step gradient ratio is no loss scale (its fix would be harmful); the cause is the order."""
    from user_loops import clipped_loop

    A = clipped_loop(*clip_prob, 0.5, 0.1, 30, decay_first=False)
    B = clipped_loop(*clip_prob, 0.5, 0.1, 30, decay_first=True)
    d = dg.diagnose(A, B)
    assert (d.stage, d.cause) == ("gradient", "clip-order") and d.differs
    assert "weight_decay=0.1" in d.fix["b"] and "p.grad.add_(p, alpha=0.1)" in d.fix["a"]
    # each fix applied with the coefficient it prints: B clips first and decays by weight_decay after, A adds
    # the printed alpha to p.grad before clipping; each then matches the other run
    import re

    wd_b = float(re.search(r"weight_decay=([0-9.e+-]+)", d.fix["b"]).group(1))
    wd_a = float(re.search(r"alpha=([0-9.e+-]+)", d.fix["a"]).group(1))
    assert dg.diagnose(A, clipped_loop(*clip_prob, 0.5, wd_b, 30, decay_first=False)).first_divergence_step is None
    assert dg.diagnose(clipped_loop(*clip_prob, 0.5, wd_a, 30, decay_first=True), B).first_divergence_step is None
    assert dg.diagnose(A, clipped_loop(*clip_prob, 0.5, 0.2, 30, decay_first=False)).first_divergence_step is not None
    assert dg.diagnose(B, A).cause == "clip-order"  # either way round


def test_one_run_clipping_is_not_a_loss_scale(clip_prob):
    import torch as t

    from xreg.record import TorchRecorder

    def run(clip):
        X, y, w0, b0 = clip_prob
        model = t.nn.Linear(4, 1).double()
        with t.no_grad():
            model.weight.copy_(t.as_tensor(w0))
            model.bias.copy_(t.as_tensor(b0))
        opt = t.optim.SGD(model.parameters(), lr=0.5, weight_decay=0.01)
        rec = TorchRecorder(model, opt)
        for _ in range(25):
            opt.zero_grad()
            t.nn.functional.binary_cross_entropy_with_logits(model(t.as_tensor(X))[:, 0], t.as_tensor(y)).backward()
            if clip:
                t.nn.utils.clip_grad_norm_(model.parameters(), 0.05)
            opt.step()
        rec.remove()
        return rec.run()

    d = dg.diagnose(run(False), run(True))
    assert (d.stage, d.cause) == ("gradient", "clipping") and "max_norm=0.05" in d.fix["a"]


# ---- what a new user's CSV holds: a text id, text labels, a pandas index, ';', missing values, a huge cell ---------
NEW_USER_CSV = {
    "ids.csv": "id,x1,x2,label\np0,1,2,yes\np1,2,1,no\np2,3,3,yes\np3,0,1,no\np4,2,2,yes\np5,1,0,no\n",
    "index.csv": ",x1,label\n0,1,0\n1,2,1\n",
    "semicolon.csv": "x1;x2;label\n1;2;0\n2;1;1\n",
    "missing.csv": "x1,x2,label\n1,2,0\n2,,1\n3,1,0\n4,2,1\n5,nan,0\n6,1,1\n",
    "long-cell.csv": "x1,label\n" + "a" * 1000 + ",0\n1,1\n",
    "huge-cell.csv": "x1,label\n" + "a" * 200_000 + ",0\n1,1\n",
}


@pytest.fixture(scope="module")
def new_user_dir(tmp_path_factory):
    from conftest import files_in

    return files_in(tmp_path_factory, "newuser", NEW_USER_CSV)


@pytest.mark.parametrize("name, extra, said", [
    ("ids.csv", ["--drop", "id"], "Non-numeric value 'yes' in column 'label' at line 2 of '{dir}/ids.csv'; pass --map-labels"),
    ("index.csv", [], "Column 1 of '{dir}/index.csv' has no name (a pandas index"),
    ("semicolon.csv", [], "looks ';'-separated; pass --delimiter ';'"),
    ("missing.csv", [], "Non-numeric value '' in column 'x2' at line 3 of '{dir}/missing.csv'; --drop-missing drops"),
    ("long-cell.csv", [], "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' (1000 characters) in column 'x1'"),
    ("huge-cell.csv", [], "is not a readable CSV (field larger than field limit"),
])  # fmt: skip
def test_a_new_users_csv_gets_a_hint(name, extra, said, new_user_dir, capsys):
    cap = one_error(capsys, 2, ["--data", str(new_user_dir / name), "--target", "label", "--epochs", "2", *extra],
                    said.replace("{dir}", str(new_user_dir)))  # fmt: skip
    assert len(cap.err) < 400  # the cell is not echoed whole


def test_drop_a_text_column_map_text_labels_and_drop_missing_rows(new_user_dir, capsys):
    common = ["--target", "label", "--epochs", "2", "--backend", "numpy", "--test-fraction", "0", "--json", "-", "--quiet"]
    assert main(["--data", str(new_user_dir / "ids.csv"), "--drop", "id", "--map-labels", *common]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["data"]["features"] == ["x1", "x2"] and doc["data"]["n_train"] == 6
    assert main(["--data", str(new_user_dir / "missing.csv"), "--drop-missing", *common]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["n_train"] == 4  # the rows with '' and nan are left out
    from xreg.io.data import load

    d = load(str(new_user_dir / "ids.csv"), "label", drop=("id",), map_labels=True, test_fraction=0)
    np.testing.assert_array_equal(d.y_train, [1, 0, 1, 0, 1, 0])  # 'no' -> 0, 'yes' -> 1 (sorted)


def test_a_run_whose_loss_grows_by_orders_is_flagged_unstable(capsys):
    """Raw breast_cancer (features up to ~4000) at lr 0.05: the loss goes from 0.69 to thousands; the pair
    verdicts may be round-off, the run is unstable and the warning says what to change."""
    argv = ["--data", "breast_cancer", "--backend", "numpy", "--epochs", "200", "--json", "-", "--quiet"]
    main(argv)
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert any(w.startswith("unstable: the training loss of numpy/coupled grew from 0.6931") and "--standardize" in w for w in warnings)
    assert main(argv + ["--standardize"]) == 0
    assert not any("unstable" in w for w in json.loads(capsys.readouterr().out)["warnings"])


def test_the_derived_scratch_run_scales_every_group_strength(capsys):
    """README's --group-decay MLP: the scratch run at lam*m reproduces torch only if each group's strength
    is scaled by m too (it was not: 'mismatch from step 1' beside 'reproduces the reference')."""
    argv = ["--data", "digits", "--standardize", "--model", "mlp", "--hidden", "8", "--optimizer", "sgd", "--momentum", "0.9",
            "--lam", "0.001", "--group-decay", "out.*=0.01", "--no-decay", "bias", "--epochs", "5", "--json", "-", "--quiet"]  # fmt: skip
    main(argv)
    doc = json.loads(capsys.readouterr().out)
    derived = next(r for r in doc["runs"] if r["label"].startswith("numpy/scratch@lam="))
    assert derived["label"] == "numpy/scratch@lam=1.438"
    verdict = {p["b"]: p["verdict"] for p in doc["pairs"] if p["a"] == "torch/coupled"}
    assert verdict["numpy/scratch@lam=1.438"] == "match" and verdict["numpy/scratch"] == "mismatch"


def test_sweep_verification_judges_as_compare_does(capsys):
    """The chaotic RMSprop point compare calls 'round-off (chaotic)': the sweep's verification agrees
    (it used to say the grid cannot be trusted, exit 1)."""
    argv = ["sweep", "--optimizer", "rmsprop", "--opt", "alpha=0.9", "--lam", "0.01", "--epochs", "200",
            "--sweep", "lr=0.02:0.02:1", "--verify", "1", "--backend", "torch", "--json", "-"]  # fmt: skip
    assert main(argv) == 0
    (v,) = json.loads(capsys.readouterr().out)["verified"]
    assert v["verdict"] == "round-off (chaotic)" and v["max_param_gap"] > v["tolerance"] and "round-off floor" in v["note"]


def test_outputs_are_all_or_nothing(tmp_path):
    """A file-size limit that the report exceeds and the JSON does not: exit 3, and neither output (nor a
    temporary file) is left; without the limit, both are written."""
    import shlex
    import subprocess
    import sys

    cmd = (f"ulimit -f 40; exec {shlex.quote(sys.executable)} -m xreg --backend numpy --epochs 3 --quiet "
           f"--json {tmp_path}/c.json --report {tmp_path}/r.html")  # fmt: skip
    p = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert p.returncode == 3 and p.stderr == f"error: could not write the output: File too large: '{tmp_path}/r.html'\n", p.stderr
    assert list(tmp_path.iterdir()) == []
    p = subprocess.run(["sh", "-c", cmd.replace("ulimit -f 40; ", "")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and sorted(x.name for x in tmp_path.iterdir()) == ["c.json", "r.html"]


def test_a_jax_platforms_jax_cannot_start_is_named():
    import os

    from importlib import metadata

    if any("cuda" in (d.metadata["Name"] or "").lower() and "jax" in (d.metadata["Name"] or "").lower() for d in metadata.distributions()):
        pytest.skip("a JAX CUDA plugin is installed: JAX_PLATFORMS=cuda can start here")
    env = {**os.environ, "JAX_PLATFORMS": "cuda"}  # no JAX CUDA plugin: JAX cannot start that platform
    p = _xreg("--epochs", "2", "--backend", "numpy", "--backend", "jax", "--json", "-", "--quiet", env=env)
    runs = {r["label"]: r for r in json.loads(p.stdout)["runs"]}
    assert runs["jax/coupled"]["status"].startswith("unavailable: JAX cannot start: JAX_PLATFORMS='cuda' names no platform")
    p = _xreg("sweep", "--sweep", "lr=0.1:1:2", "--epochs", "2", env=env)
    assert p.returncode == 2 and p.stderr.startswith("error: JAX cannot start") and p.stderr.count("\n") == 1, p.stderr


def test_an_address_space_limit_below_what_jax_needs_is_said_not_crashed_into():
    """``ulimit -v 1500000`` (1.43 GiB): JAX aborts or segfaults loading under it (measured); xreg says so
    and runs the rest."""
    import shlex
    import subprocess
    import sys

    run = lambda args: subprocess.run(["sh", "-c", f"ulimit -v 1500000; exec {shlex.quote(sys.executable)} -m xreg {args}"],  # noqa: E731
                                      capture_output=True, text=True, timeout=300)  # fmt: skip
    p = run("--epochs 3 --json - --quiet")
    assert p.returncode in (0, 1), (p.returncode, p.stderr[-500:])
    runs = {r["label"]: r for r in json.loads(p.stdout)["runs"]}
    assert runs["jax/coupled"]["status"].startswith("unavailable: the address-space limit (ulimit -v) of 1.43 GiB")
    assert runs["torch/coupled"]["status"] == "ok" and runs["numpy/coupled"]["status"] == "ok"
    p = run("sweep --sweep lr=0.1:1:2 --epochs 2")
    assert p.returncode == 2 and "below the 2.5 GiB jax needs" in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_diagnose_takes_the_bfloat16_it_lists(npz_dir, capsys):
    assert main(["diagnose", str(npz_dir / "good.npz"), str(npz_dir / "good.npz"), "--dtype", "bfloat16"]) == 0
    assert "(3 steps, bfloat16)" in capsys.readouterr().out


def test_a_csv_of_100k_columns_is_read_within_memory(tmp_path, capsys):
    """100,000 feature columns with --allow-many-features: read row by row (numpy's loadtxt preallocated
    37 GiB for it); the run is made."""
    n = 100_000
    rows = [",".join(f"f{i}" for i in range(n)) + ",label"]
    rows += [",".join("1" if (i + r) % 3 else "0" for i in range(n)) + f",{r % 2}" for r in range(12)]
    path = tmp_path / "wide.csv"
    path.write_text("\n".join(rows) + "\n")
    argv = ["--data", str(path), "--target", "label", "--allow-many-features", "--epochs", "2", "--backend", "numpy",
            "--test-fraction", "0", "--json", "-", "--quiet"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["data"]["n_features"] == n


def test_translate_masks_the_users_own_names(capsys):
    """--no-decay names parameters of the user's model, never checked against xreg's logistic one."""
    assert main(["translate", "--from", "torch.adam", "--weight-decay", "0.1", "--no-decay", "norm", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "xreg.twins.decay_mask(('norm',))" in doc["optax_code"] and "('norm',)" in doc["torch_code"]


def test_review_mends(tmp_path, npz_dir, capsys):
    """A multi-array .npz of a few MB is read; a Recorder meta naming only the optimizer (as the README shows)
    is no error; a scenario's quoted key cannot smuggle an output flag; an empty text label is missing,
    not a class; bfloat16 leaves are recorded."""
    import jax.numpy as jnp

    from xreg.core.plan import read_npz
    from xreg.record import Recorder

    np.savez(tmp_path / "two.npz", a=np.zeros(400_000), b=np.zeros(400_000))
    assert set(read_npz(tmp_path / "two.npz", "parameter")) == {"a", "b"}
    A, B = _runs()
    import dataclasses

    d = dg.diagnose(dataclasses.replace(A, meta={"framework": "optax", "optimizer": "adamw"}), B)
    assert d.first_divergence_step is None
    sc = tmp_path / "s.toml"
    sc.write_text('title = "t"\nsummary = "s"\n[compare]\nepochs = 2\n"json=/tmp/x.json" = true\n'
                  '[[expect]]\na = "numpy/coupled"\nb = "jax/coupled"\nverdict = "match"\nwhy = "w"\n')  # fmt: skip
    one_error(capsys, 2, ["compare", str(sc)], "flag names are words of a-z")
    csv = tmp_path / "blank.csv"
    csv.write_text("x1,label\n1,yes\n2,\n3,no\n4,yes\n")
    one_error(capsys, 2, ["--data", str(csv), "--target", "label", "--map-labels", "--epochs", "2"], "is '': missing, not a class")
    r = Recorder()
    r.log({"w": jnp.ones(2, jnp.bfloat16)})
    assert r.meta["dtype"] == "bfloat16"
