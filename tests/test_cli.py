"""The CLI: default run, flags, JSON content and determinism, exit codes."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xreg.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xreg.compare", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def default_json(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    runs = [run_cli("--json", str(out / f"run{i}.json")) for i in range(2)]
    return runs, [(out / f"run{i}.json").read_bytes() for i in range(2)]


def test_default_run_table_and_exit_code(default_json):
    (proc, _), _ = default_json
    assert proc.returncode == 1, proc.stderr  # the scratch run is a mismatch, so the exit is 1
    assert proc.stderr == ""
    for label in ["torch/coupled", "jax/coupled", "jax/l2-loss", "numpy/coupled", "numpy/scratch"]:
        assert label in proc.stdout
    assert "scratch lam=0.1 with m=1096 == torch weight_decay=9.124e-05" in proc.stdout
    assert "1096 train / 274 test rows, 4 features" in proc.stdout


def test_default_json_content(default_json):
    _, (first, _) = default_json
    doc = json.loads(first)
    assert doc["spec"]["lr"] == 0.05 and doc["spec"]["lam"] == 0.1 and doc["spec"]["epochs"] == 1000
    runs = {r["label"]: r for r in doc["runs"]}
    for r in runs.values():
        assert {"backend", "convention", "final_params", "loss", "train_accuracy", "test_accuracy"} <= set(r)
        assert np.shape(r["final_params"]["weight"]) == (1, 4) and np.shape(r["final_params"]["bias"]) == (1,)
        assert len(r["loss"]) == 1000 and len(r["train_accuracy"]) == 1000
    pairs = {(p["a"], p["b"]): p for p in doc["pairs"]}
    assert len(pairs) == len(runs) * (len(runs) - 1) // 2
    for other in ["jax/coupled", "jax/l2-loss", "numpy/coupled", "numpy/scratch@lam=109.6"]:
        p = pairs[("torch/coupled", other)]
        assert p["verdict"] == "match" and p["first_divergence_step"] is None and p["max_abs_diff"] <= 1e-12
    p = pairs[("torch/coupled", "numpy/scratch")]
    assert p["verdict"] == "mismatch" and p["first_divergence_step"] >= 1
    assert runs["numpy/scratch"]["equivalent_torch_weight_decay"] == pytest.approx(0.1 / 1096)
    assert doc["environment"]["torch"].startswith("2.13.0")


def test_two_runs_give_bit_identical_json(default_json):
    _, (first, second) = default_json
    assert first == second


def test_all_matching_runs_exit_zero(capsys):
    code = main(["--epochs", "20", "--backend", "torch", "--backend", "numpy", "--convention", "torch"])
    assert code == 0
    assert "match" in capsys.readouterr().out


def test_flags_reach_the_runs(tmp_path, user_csv, capsys):
    out = tmp_path / "r.json"
    code = main(["--data", str(user_csv), "--target", "label", "--test-fraction", "0", "--momentum", "0.9",
                 "--nesterov", "--epochs", "30", "--batch-size", "64", "--shuffle", "--seed", "4",
                 "--no-decay-bias", "--dtype", "float32", "--backend", "torch", "--backend", "jax",
                 "--json", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr()
    doc = json.loads(out.read_text())
    s = doc["spec"]
    assert s["options"]["momentum"] == 0.9 and s["options"]["nesterov"] is True and s["dtype"] == "float32"
    assert s["batch_size"] == 64 and s["shuffle"] and s["seed"] == 4 and s["no_decay"] == ["bias"]
    assert doc["data"]["n_train"] == 250 and doc["data"]["batch_sizes"] == [64, 64, 64, 58]
    assert all(a is None for a in doc["runs"][0]["test_accuracy"])  # no test split


def test_json_is_not_clobbered_without_force(tmp_path, capsys):
    out = tmp_path / "keep.json"
    out.write_text("precious")
    assert main(["--epochs", "2", "--json", str(out)]) == 2
    assert out.read_text() == "precious"
    assert "pass --force" in capsys.readouterr().err
    assert main(["--epochs", "2", "--json", str(out), "--force", "--backend", "numpy"]) == 0
    assert json.loads(out.read_text())["spec"]["epochs"] == 2


def test_worked_example_csv_through_cli(capsys):
    code = main(["--data", str(ROOT / "comparisons" / "worked_example.csv"), "--target", "y", "--model", "linear",
                 "--lr", "0.1", "--lam", "1", "--epochs", "1", "--init", "constant", "--init-scale", "1",
                 "--test-fraction", "0", "--convention", "torch", "--convention", "scratch"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "scratch lam=2 reproduces the reference" in out


def test_plot_is_a_png_written_like_the_json(tmp_path, capsys):
    out = tmp_path / "cmp.png"
    args = ["--epochs", "30", "--optimizer", "adam", "--lr", "0.01", "--plot", str(out)]
    assert main(args) == 1  # the naive adam port and scratch mismatch
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert main(args) == 2 and "pass --force" in capsys.readouterr().err  # not clobbered


def test_the_figure_has_the_three_graphs_and_the_deviation(tmp_path, default_data):
    """Issue 10: loss, training accuracy, test accuracy and deviation panels; matching runs drawn once
    with every run they stand for in one legend entry; SVG by suffix."""
    from xreg.analysis import runs
    from xreg.core.plan import batch_sizes
    from xreg.core.spec import ExperimentSpec
    from xreg.report import plots

    spec = ExperimentSpec(epochs=20)
    reqs = runs.requests_from(spec, batch_sizes(spec, default_data.n_train), default_data, None, None)
    c = runs.run_all(spec, default_data, reqs)
    fig = plots.figure(c)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["training loss", "training accuracy", "test accuracy", "deviation from the reference (torch/coupled)"]
    (legend,) = fig.legends
    entries = [t.get_text() for t in legend.get_texts()]
    assert entries == ["torch/coupled = jax/coupled = jax/l2-loss = numpy/coupled = numpy/scratch@lam=109.6", "numpy/scratch"]
    dev = [t.get_text() for t in fig.axes[3].get_legend().get_texts()]
    assert len(dev) == len(c.outcomes) - 1 + 2 and "match tolerance" in dev and "first divergence" in dev
    assert "numpy/scratch (mismatch)" in dev
    plots.write_png(c, tmp_path / "f.svg")
    assert (tmp_path / "f.svg").read_text().lstrip().startswith("<?xml") and "<svg" in (tmp_path / "f.svg").read_text()
