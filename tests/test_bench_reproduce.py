"""Issue 8: the benchmark times the same training in every implementation, the compiled JAX path's
hand-written gradient is autodiff's, and the Loshchilov & Hutter reproduction states its claim."""

import json

import jax
import numpy as np
import pytest

from xreg import backends
from xreg.analysis import bench
from xreg.analysis import reproduce
from xreg.analysis.sweep import Axis, SweepResult
from xreg.backends.jax import run as jax_run
from xreg.cli import main
from xreg.core.spec import ExperimentSpec
from xreg.core.structure import split


@pytest.mark.parametrize("impl", ["xreg jax", "xreg jax (recorded)", "numpy loop", "torch eager", "torch eager (1 thread)", "jax one-pass"])
def test_every_benchmarked_implementation_trains_the_same_model(impl, default_data):
    """What each timed loop computes is torch's SGD(weight_decay) run of the same spec (float64, 60
    steps); a row chunk of 256 makes the one-pass path sum over five chunks."""
    steps, k = 60, 3
    ref = backends.train("torch", ExperimentSpec(epochs=steps, lr=bench._lr(k), lam=bench.LAM), default_data)
    make = bench.IMPLS[impl]
    run = make(default_data, "float64", steps, rows=256) if impl == "jax one-pass" else make(default_data, "float64", steps)
    w, b = run(k)
    assert np.max(np.abs(np.asarray(w) - ref.final_params["weight"][0])) < 1e-13
    assert abs(float(b) - ref.final_params["bias"][0]) < 1e-13


def test_bench_command_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--sizes", "seed", "--dtypes", "float32", "--repeat", "1", "--steps", "seed=20",
                 "--no-torch-compile", "--no-commands", "--json", str(out)]) == 0  # fmt: skip
    doc = json.loads(out.read_text())
    assert doc["machine"]["read_bandwidth_GBps"] > 0.1
    impls = [r["impl"] for r in doc["rows"]]
    assert impls == ["xreg jax", "xreg jax (recorded)", "numpy loop", "torch eager", "torch eager (1 thread)"]
    assert doc["commands"] == []
    assert all(r["per_step_us"] > 0 and r["steps"] == 20 for r in doc["rows"])
    assert "vs numpy" in capsys.readouterr().out


@pytest.mark.parametrize("model, head_data", [("logistic", "default"), ("linear", "default"), ("softmax", "iris"),
                                              ("mlp", "iris")])  # fmt: skip
@pytest.mark.parametrize("convention", ["torch", "l2-loss"])
def test_hand_written_gradient_is_autodiff(model, head_data, convention, default_data):
    """The compiled step's gradient (backpropagation by hand, penalty by autodiff) against jax.grad of
    the objective, on a padded minibatch (two rows masked out), in float64."""
    from xreg.io import data as io

    ds = default_data if head_data == "default" else io.load(head_data, model=model, standardize=True)
    spec = ExperimentSpec(model=model, convention=convention, lam=0.3, init="normal", init_scale=0.5)
    s, hp = split(spec, ds)
    with jax.enable_x64(True):
        prog = jax_run.program(s)
        rng = np.random.default_rng(1)
        params = {n: rng.standard_normal(shape) for n, shape in s.arch.shapes.items()}
        X, y = ds.X_train[:12], ds.y_train[:12]
        valid = np.arange(12) < 10
        hpc = jax_run.cast_hparams(hp, prog.dtype)
        mine, (loss, pen), _ = prog.gradient(params, {}, X, y, valid, np.float64(10), hpc)
        theirs, (loss2, pen2) = prog.autodiff(params, {}, X, y, valid, np.float64(10), hpc)
    for n in s.arch.names:
        np.testing.assert_allclose(np.asarray(mine[n]), np.asarray(theirs[n]), rtol=1e-12, atol=1e-14)
    assert float(loss) == pytest.approx(float(loss2), rel=1e-14) and float(pen) == pytest.approx(float(pen2), rel=1e-14)


def fake(lr, lam, acc) -> SweepResult:
    grid = {"test_accuracy": np.asarray(acc, float), "final_loss": np.zeros(np.shape(acc))}
    return SweepResult(ExperimentSpec(), None, (Axis("lr", tuple(lr), True), Axis("lam", tuple(lam), True)), grid, [])


def test_claim_slope_by_hand():
    """best lam = 100*lr on a 3 x 3 grid: slope 1; a row that does not train is left out of the fit."""
    lr, lam = [1e-3, 1e-2, 1e-1], [1e-1, 1.0, 10.0]
    acc = [[0.9, 0.5, 0.5], [0.5, 0.9, 0.5], [0.5, 0.5, 0.9]]
    c = reproduce.claim("x", fake(lr, lam, acc))
    assert c.slope == pytest.approx(1.0) and c.best_lam == pytest.approx(lam) and c.best_test_error == pytest.approx(0.1)
    acc[2] = [0.2, 0.3, 0.2]  # lr=0.1 diverges: not usable
    c = reproduce.claim("x", fake(lr, lam, acc))
    assert c.lrs == [1e-3, 1e-2] and c.slope == pytest.approx(1.0)
    flat = reproduce.claim("x", fake(lr, lam, [[0.5, 0.9, 0.5]] * 3))
    assert flat.slope == pytest.approx(0.0)  # decoupled: one best lam for every lr


def test_reproduce_command_writes_its_three_files(tmp_path, capsys):
    assert main(["reproduce", "decoupling", "--size", "3", "--epochs", "4", "--verify", "1", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "decoupling.json").read_text())
    assert [p["name"] for p in doc["panels"]] == ["Adam + L2", "AdamW", "SGD + L2", "SGDW"]
    assert all(np.shape(p["test_error"]) == (3, 3) and p["verified"][0]["verdict"] == "match" for p in doc["panels"])
    assert doc["panels"][1]["spec"]["decoupled_scale"] == "schedule" and doc["panels"][0]["spec"]["convention"] == "coupled"
    assert (tmp_path / "decoupling.png").read_bytes()[:4] == b"\x89PNG"
    assert "slope" in (tmp_path / "decoupling.txt").read_text()
    assert main(["reproduce", "decoupling", "--size", "3", "--epochs", "4", "--out", str(tmp_path)]) == 2  # no clobbering


def test_row_pass_weight_gradient_is_the_same_sum():
    """The one-pass form XLA prefers on tall X (one output) against X^T delta: one sum, rounded apart."""
    from xreg import models

    rng = np.random.default_rng(3)
    for model, k in (("logistic", 2), ("softmax", 3)):
        arch = models.architecture(model, 5, k)
        params = {n: rng.standard_normal(shape) for n, shape in arch.shapes.items()}
        X, y = rng.standard_normal((40, 5)), rng.integers(0, k, 40).astype(float)
        _, a = models.backward(arch, params, X, y, np)
        _, b = models.backward(arch, params, X, y, np, rows_first=True)
        for n in arch.names:
            np.testing.assert_allclose(a[n], b[n], rtol=1e-13, atol=1e-15)


@pytest.mark.slow
def test_the_whole_process_timings_run_each_command():
    rows = bench.commands(1)
    assert [r["command"] for r in rows] == list(bench.COMMANDS)
    assert all(r["note"] == "" and r["median_s"] > 0 and len(r["runs_s"]) == 1 for r in rows), rows
    assert "whole processes" in bench.table({"machine": {"cpus": 2, "read_bandwidth_GBps": 1.0}, "repeat": 1, "rows": [], "commands": rows})
