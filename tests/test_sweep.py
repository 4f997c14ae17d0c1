"""Issue 8: sweeps. The grid runs in JAX as vmapped chunks, sharded over the devices; every expected
number here comes from another framework's independent run of the same point (torch), from the axis
formula, or from the same sweep on another device layout."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xreg import backends
from xreg.analysis import sweep
from xreg.cli import main
from xreg.core.spec import ExperimentSpec

pytestmark = pytest.mark.slow  # the full tier only (pytest -m 'not slow' is the fast one)

ROOT = Path(__file__).resolve().parents[1]


def gap(grid_params, index, traj) -> float:
    return max(float(np.max(np.abs(grid_params[n][index] - traj.final_params[n]))) for n in traj.params)


def test_axis_values_come_from_the_formula():
    a = sweep.parse_axis("lr=log:1e-3:1e-1:3")
    assert a.log and a.values == pytest.approx((1e-3, 1e-2, 1e-1), rel=1e-12)
    assert sweep.parse_axis("momentum=0:0.9:4").values == pytest.approx((0.0, 0.3, 0.6, 0.9), abs=1e-15)
    assert sweep.parse_axis("lam=0.5:0.5:1").values == (0.5,)
    points = sweep.grid_points([sweep.parse_axis("lr=1:2:2"), sweep.parse_axis("lam=3:5:3")])
    assert points[:4] == [{"lr": 1, "lam": 3}, {"lr": 1, "lam": 4}, {"lr": 1, "lam": 5}, {"lr": 2, "lam": 3}]  # C order


def test_verify_picks_the_centre_and_the_corners():
    assert sweep.verify_indices((3, 5), None) == [(1, 2), (0, 0), (0, 4), (2, 0), (2, 4)]
    assert sweep.verify_indices((3, 5), 1) == [(1, 2)]
    picks = sweep.verify_indices((3, 5), 9)
    assert len(picks) == len(set(picks)) == 9 and picks[:5] == sweep.verify_indices((3, 5), None)
    assert len(sweep.verify_indices((2,), 10)) == 2  # never more points than the grid has


def test_grid_equals_torch_point_by_point_across_two_structures(default_data):
    """lam x momentum on shuffled minibatches: momentum=0 and momentum>0 compile apart (two
    structures); every grid point's final parameters and metrics are torch's run of that point."""
    base = ExperimentSpec(lr=0.05, lam=0.1, epochs=20, batch_size=256, shuffle=True)
    axes = [sweep.parse_axis("lam=log:1e-3:1:3"), sweep.parse_axis("momentum=0:0.9:2")]
    r = sweep.run_sweep(base, default_data, axes, verify=0)
    assert r.grid["structures"] == 2 and r.shape == (3, 2)
    for i, lam in enumerate(axes[0].values):
        for j, mom in enumerate(axes[1].values):
            t = backends.train("torch", base.replace(lam=lam, options={"momentum": mom}), default_data)
            assert gap(r.grid["final_params"], (i, j), t) < 1e-12
            assert r.grid["final_loss"][i, j] == pytest.approx(t.train_loss[-1], rel=1e-12)
            assert r.grid["train_accuracy"][i, j] == pytest.approx(t.train_accuracy[-1], rel=1e-12)
            assert r.grid["test_accuracy"][i, j] == pytest.approx(t.test_accuracy[-1], rel=1e-12)


def test_beta_axes_reach_adam_and_the_verified_points_agree(default_data):
    base = ExperimentSpec(optimizer="adam", lr=0.02, lam=0.01, epochs=30)
    axes = [sweep.parse_axis("beta2=0.9:0.999:2"), sweep.parse_axis("beta1=0.5:0.9:2")]
    r = sweep.run_sweep(base, default_data, axes, verify_backends=("numpy",))
    assert [v.verdict for v in r.verified] == ["match"] * 4 and r.all_agree  # the 2x2 grid: its four corners
    t = backends.train("torch", base.replace(options={"betas": (0.5, 0.9)}), default_data)  # beta2=0.9, beta1=0.5
    assert gap(r.grid["final_params"], (0, 0), t) < 1e-12
    other = backends.train("torch", base.replace(options={"betas": (0.9, 0.5)}), default_data)
    assert gap(r.grid["final_params"], (0, 0), other) > 1e-6  # the two betas are not interchangeable


def test_a_wrong_grid_point_is_flagged(default_data):
    """The judge of a verified point: the grid's final parameters against a full run in another backend."""
    spec = ExperimentSpec(epochs=30)
    t = backends.train("numpy", spec, default_data)
    grid = {"final_loss": np.array([t.train_loss[-1]]), "final_params": {n: p[-1][None] for n, p in t.params.items()}}
    ok = sweep._verify("torch", spec, default_data, (0,), {"lam": 0.1}, grid)
    assert ok.verdict == "match" and 0 < ok.tolerance < 1e-12
    bias = grid["final_params"]["bias"]
    # judged at its scale, against the round-off floor as compare judges a same-rule pair (10x max(floor, tol))
    for shift, verdict in ((30 * ok.tolerance, "mismatch"), (3 * ok.tolerance, "round-off (chaotic)"), (0.3 * ok.tolerance, "match")):
        grid["final_params"]["bias"] = bias + shift  # a bug far below any plot's resolution, or round-off
        v = sweep._verify("torch", spec, default_data, (0,), {"lam": 0.1}, grid)
        assert v.verdict == verdict and v.max_param_gap == pytest.approx(shift, rel=0.2), (shift, v)


def test_one_compilation_per_structure(default_data):
    base = ExperimentSpec(epochs=17)
    sweep.run_sweep(base, default_data, [sweep.parse_axis("lr=0.01:0.1:5")], verify=0)
    again = sweep.run_sweep(base.replace(lam=0.3), default_data, [sweep.parse_axis("lam=0.01:0.1:7")], verify=0)
    assert again.grid["compilations"] == 0  # other values, same structure and chunk: the compiled program is reused


def test_cli_json_c_order_and_plot(tmp_path, default_data):
    out, png = tmp_path / "s.json", tmp_path / "s.png"
    argv = ["sweep", "--sweep", "lr=log:0.01:0.1:3", "--sweep", "lam=0:0.2:2", "--epochs", "20", "--verify", "1",
            "--json", str(out), "--plot", str(png)]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(out.read_text())
    assert doc["sweep"]["axes"] == {"lr": pytest.approx([0.01, 0.1**1.5, 0.1]), "lam": [0.0, 0.2]}
    (run,) = doc["runs"]
    assert run["backend"] == "jax" and run["convention"] == "coupled" and run["devices"] == ["cpu:0"]
    assert np.shape(run["final_loss"]) == (3, 2) and np.shape(run["final_params"]["weight"]) == (3, 2, 1, 4)
    for i, j in ((2, 1), (0, 1), (1, 0)):  # C order: entry [i][j] is (lr_i, lam_j)
        t = backends.train("torch", ExperimentSpec(lr=doc["sweep"]["axes"]["lr"][i], lam=[0.0, 0.2][j], epochs=20),
                           default_data)  # fmt: skip
        assert run["final_loss"][i][j] == pytest.approx(t.train_loss[-1], rel=1e-12)
        assert np.allclose(run["final_params"]["weight"][i][j], t.final_params["weight"], rtol=0, atol=1e-12)
        assert run["test_accuracy"][i][j] == pytest.approx(t.test_accuracy[-1], rel=1e-12)
    assert [v["verdict"] for v in doc["verified"]] == ["match", "match"] and doc["all_agree"]  # torch and numpy
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(argv) == 2  # the files exist now: nothing is overwritten without --force


SWEEP = ["-m", "xreg", "sweep", "--data", "iris", "--model", "softmax", "--standardize", "--optimizer", "adam",
         "--lr", "0.02", "--batch-size", "32", "--shuffle", "--epochs", "6", "--sweep", "lam=log:1e-4:1:7",
         "--sweep", "beta1=0.8:0.9:2", "--verify", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "one.json"
    assert main(SWEEP[2:] + ["--json", str(out)]) == 0
    return json.loads(out.read_text())["runs"][0]


def run_xreg(args, devices, **kw):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)  # fmt: skip


def test_four_devices_give_the_same_numbers(one_device, tmp_path):
    proc = run_xreg(SWEEP + ["--json", str(tmp_path / "four.json")], 4)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    four = json.loads((tmp_path / "four.json").read_text())["runs"][0]
    assert four["devices"] == ["cpu:0", "cpu:1", "cpu:2", "cpu:3"]
    assert four["final_params"] == one_device["final_params"] and four["final_loss"] == one_device["final_loss"]


def test_two_processes_on_loopback_give_the_same_numbers(one_device, tmp_path):
    """JAX's distributed runtime: two processes with two CPU devices each run one sweep over the four."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [run_xreg(SWEEP + ["--json", str(tmp_path / f"p{i}.json"), "--coordinator", f"127.0.0.1:{port}",
                               "--num-processes", "2", "--process-id", str(i)], 2) for i in range(2)]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    lead = json.loads((tmp_path / "p0.json").read_text())["runs"][0]
    assert not (tmp_path / "p1.json").exists()  # one process reports
    assert len(lead["devices"]) == 4
    assert lead["final_params"] == one_device["final_params"] and lead["final_loss"] == one_device["final_loss"]


def test_gpu_tests_skip_cleanly_without_one(capsys):
    import jax

    try:
        jax.devices("gpu")
    except RuntimeError:
        assert main(["sweep", "--device", "gpu", "--sweep", "lr=0.1:0.2:2", "--epochs", "2"]) == 2
        assert main(["compare", "--device", "gpu", "--epochs", "2"]) == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 2 and all(e.startswith("error: --device gpu: ") for e in err)  # before any run
        pytest.skip("no GPU here: --device gpu is refused with one error line (checked)")
    assert main(["sweep", "--device", "gpu", "--sweep", "lr=0.1:0.2:2", "--epochs", "5"]) == 0
    assert main(["compare", "--device", "gpu", "--epochs", "5"]) == 0


def test_chunk_size_depends_on_the_grid_and_the_problem_only():
    from xreg.backends.jax.run import chunk_size

    assert [chunk_size(1), chunk_size(21), chunk_size(1024), chunk_size(5000)] == [1, 32, 1024, 1024]
    assert chunk_size(5000, 1_000_000) == 128  # 1M rows x 1 output: 128 points hold 2^27 activations


def test_a_diverged_point_ranks_last_whatever_its_accuracy(default_data):
    # the ranking reads the grid's numbers: a point whose final loss is nan ranks after every finite one, even where
    # a stale accuracy says more
    axis = sweep.Axis("lr", (0.1, 1.0, 10.0))
    grid = {"final_loss": np.array([0.3, np.nan, 0.2]), "test_accuracy": np.array([0.8, 0.99, 0.7]),
            "train_accuracy": np.array([0.8, 0.99, 0.7])}  # fmt: skip
    r = sweep.SweepResult(ExperimentSpec(), default_data, (axis,), grid, [])
    assert r.ranking("test_accuracy") == [(0,), (2,), (1,)] and r.ranking("final_loss") == [(2,), (0,), (1,)]
