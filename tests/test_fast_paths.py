"""Where the user waits (issue 27): the torch runs in a child process beside the others, torch's threads by
the problem's size. Speed itself is measured by ``xreg bench``, never here: these tests check that the
fast paths give the same runs, the same failures and the same exits as the plain ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from xreg.analysis import runs
from xreg.backends import remote
from xreg.core.plan import batch_sizes, one_thread
from xreg.core.spec import ExperimentSpec
from xreg.core.structure import architecture


def _same_runs(a, b):
    assert [o.label for o in a.outcomes] == [o.label for o in b.outcomes]
    for x, y in zip(a.outcomes, b.outcomes):
        assert (x.error, x.trajectory is None) == (y.error, y.trajectory is None), x.label
        if x.trajectory is not None:
            for name in x.trajectory.params:  # bit for bit: the same code on the same inputs
                assert np.array_equal(x.trajectory.params[name], y.trajectory.params[name]), (x.label, name)
            assert np.array_equal(x.trajectory.loss, y.trajectory.loss, equal_nan=True)
            assert x.trajectory.meta == y.trajectory.meta
    assert [(p.a, p.b, p.verdict, p.max_abs_diff) for p in a.pairs] == [(p.a, p.b, p.verdict, p.max_abs_diff) for p in b.pairs]


@pytest.mark.parametrize("spec", [ExperimentSpec(epochs=50), ExperimentSpec(optimizer="adam", lam=0.01, batch_size=256, shuffle=True, epochs=4)],
                         ids=["sgd-full-batch", "adam-minibatch"])  # fmt: skip
def test_the_torch_runs_in_a_child_process_are_the_runs_made_here(spec, default_data):
    reqs = runs.default_requests(spec, batch_sizes(spec, default_data.n_train), default_data)
    here = runs.run_all(spec, default_data, reqs, parallel=False)
    there = runs.run_all(spec, default_data, reqs, parallel=True)
    assert runs.remote_backend(spec, reqs, 1, True) == "torch"
    _same_runs(here, there)


def test_the_child_is_used_only_where_it_saves_something():
    spec = ExperimentSpec()
    mixed = [runs.RunRequest("torch", "coupled"), runs.RunRequest("numpy", "coupled")]
    assert runs.remote_backend(spec, mixed, 10, True) == "torch"
    assert runs.remote_backend(spec, mixed[:1], 10, True) is None  # torch alone: nothing to overlap with
    assert runs.remote_backend(spec, mixed, 10, False) is None
    assert runs.remote_backend(spec.replace(device="cpu"), mixed, 10, True) is None  # a device is checked here
    assert runs.remote_backend(spec, mixed, 10, None) is None  # no child started ahead (only the program starts one)


def test_in_a_fresh_process_torch_is_never_imported_here_and_a_tiny_problem_runs_on_one_thread(tmp_path):
    code = (
        "import sys\n"
        "from xreg.analysis import runs\n"
        "from xreg.io import data\n"
        "from xreg.core.plan import batch_sizes\n"
        "from xreg.core.spec import ExperimentSpec\n"
        "ds = data.load(None, model='logistic'); spec = ExperimentSpec(epochs=20)\n"
        "c = runs.run_all(spec, ds, runs.default_requests(spec, batch_sizes(spec, ds.n_train), ds), parallel=True)\n"
        "t = c.outcomes[0].trajectory\n"
        "print(c.outcomes[0].label, t.meta['threads'], t.meta['torch'], 'torch' in sys.modules)\n"
    )  # no __main__ guard: a notebook's or script's code is never run again by the child
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    label, threads, version, imported = p.stdout.split()
    assert (label, threads, imported) == ("torch/coupled", "1", "False")
    import torch

    assert version == torch.__version__


def test_a_run_that_fails_in_the_child_is_that_runs_failure(default_data):
    far = remote.Remote("torch")
    try:
        far.submit("bad", ExperimentSpec(port="naive"), default_data)  # the torch backend refuses a naive port
        far.submit("good", ExperimentSpec(epochs=3), default_data)
        with pytest.raises(remote.RemoteError) as err:
            far.result("bad")
        assert err.value.kind == "ValueError" and "torch backend is the reference" in str(err.value)
        assert far.result("good").steps == 3  # the child goes on after a failure
    finally:
        far.close()
    assert far._proc.poll() is not None


def test_the_child_ends_when_its_parent_is_killed(tmp_path):
    code = (
        "import sys, time\n"
        "from xreg.backends import remote\n"
        "r = remote.Remote('torch'); print(r._proc.pid, flush=True); time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait(timeout=10)
    parent.stdout.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended (its parent, init, reaps it)
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_ctrl_c_during_the_default_comparison_is_one_line_and_leaves_no_child(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "xreg", "--epochs", "300000", "--json", str(tmp_path / "c.json")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(8.0)  # torch's child is started and training
    kids = _children(p.pid)
    assert kids, "the torch child was started ahead"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == "error: interrupted\n"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(k) for k in kids):
        time.sleep(0.1)
    assert not any(_alive(k) for k in kids)
    assert list(tmp_path.iterdir()) == []


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().split(")")[-1].split()[1]) == pid:
                        out.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return out


def test_one_thread_for_tiny_problems_only(default_data, user_data):
    spec = ExperimentSpec()
    assert one_thread(spec, architecture(spec, default_data), default_data.n_train)  # 1096 rows x 5 parameters
    big = ExperimentSpec(model="mlp", hidden=(512, 512))
    assert not one_thread(big, architecture(big, default_data), default_data.n_train)  # 1096 x ~265k
    from xreg.io import data

    digits = data.load("digits", model="cnn")
    cnn = ExperimentSpec(model="cnn")
    assert not one_thread(cnn, architecture(cnn, digits), digits.n_train)  # a convolution: never counted small


def test_the_torch_backend_restores_torchs_threads(default_data):
    import torch

    from xreg import backends

    before = torch.get_num_threads()
    t = backends.train("torch", ExperimentSpec(epochs=2), default_data)
    assert t.meta["threads"] == "1" and torch.get_num_threads() == before


@pytest.mark.parametrize("python", ["/nonexistent/python", "/bin/true"], ids=["cannot-start", "ends-before-loading"])
def test_where_no_child_can_run_torch_the_runs_are_made_here(python, default_data, monkeypatch):
    spec = ExperimentSpec(epochs=30)
    reqs = runs.default_requests(spec, batch_sizes(spec, default_data.n_train), default_data)
    here = runs.run_all(spec, default_data, reqs, parallel=False)
    monkeypatch.setattr(sys, "executable", python)
    _same_runs(here, runs.run_all(spec, default_data, reqs, parallel=True))


def test_a_child_killed_during_a_run_fails_that_run_with_the_reason(default_data):
    far = remote.Remote("torch")
    try:
        far.submit("long", ExperimentSpec(epochs=10**6), default_data)
        deadline = time.monotonic() + 120
        while not far._ready and time.monotonic() < deadline:
            time.sleep(0.05)
        far._proc.kill()
        with pytest.raises(remote.RemoteError) as err:
            far.result("long")
        assert err.value.kind == "WorkerDied" and "killed by signal 9" in str(err.value)
        with pytest.raises(KeyError):
            far.result("never submitted")
    finally:
        far.close()


def test_two_runs_share_one_copy_of_the_data_and_a_failing_listener_loses_no_run():
    from xreg.io import data

    digits = data.load("digits", model="softmax", standardize=True)  # ~1 MB pickled: more than a socket's buffer
    far = remote.Remote("torch")

    def broken(done):
        raise RuntimeError("a progress display that fails")

    try:
        far.submit(1, ExperimentSpec(model="softmax", epochs=2), digits, broken)
        far.submit(2, ExperimentSpec(model="softmax", epochs=3), digits)
        assert (far.result(1).steps, far.result(2).steps) == (2, 3)
        assert len(far._kept) == 1
    finally:
        far.close()


def test_a_sigterm_that_lands_in_a_garbage_collection_callback_still_ends_the_program():
    """Python only reports an exception raised in a gc callback (jax registers one; a signal during jax's
    import lands there), so the program's handler exits at once, with its line, where nothing is being
    written. The signal is sent from inside such a callback, deterministically."""
    code = (
        "import gc, os, signal, sys\n"
        "fired = []\n"
        "def callback(phase, info):\n"
        "    if not fired and signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):\n"
        "        fired.append(1)\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "gc.callbacks.append(callback)\n"
        "sys.argv = ['xreg', '--backend', 'numpy', '--epochs', '200000']\n"
        "from xreg._main import run\n"
        "sys.exit(run())\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert (p.returncode, p.stderr, p.stdout) == (143, "error: terminated\n", ""), p.stderr[-500:]


def test_a_command_with_stderr_closed_exits_as_it_would_with_it_open():
    p = subprocess.run(["bash", "-c", f"'{sys.executable}' -m xreg --version 2>&-"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("xreg ")
