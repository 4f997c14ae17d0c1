"""Issue 10, terminal: a progress bar on a terminal for work over a second, none with --quiet or a pipe;
Ctrl-C stops with one line and leaves no file behind. Real processes, a real pseudo-terminal, a real signal."""

import os
import pty
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # the full tier only (pytest -m 'not slow' is the fast one)

ARGS = ["--backend", "numpy", "--epochs", "500"]  # one short NumPy run


def run_on_a_terminal(args, delay="0"):
    """``delay``: XREG_PROGRESS_DELAY, the seconds before a bar shows (0: at once, whatever the CPU's speed)."""
    master, slave = pty.openpty()
    env = {**os.environ, "XREG_PROGRESS_DELAY": delay}
    p = subprocess.Popen([sys.executable, "-m", "xreg", *args], stdin=slave, stdout=subprocess.DEVNULL, stderr=slave, close_fds=True, env=env)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed its end
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return p.wait(), out.decode(errors="replace")


def test_a_bar_on_a_terminal_none_with_quiet():
    code, err = run_on_a_terminal(ARGS)
    assert code == 0 and "500/500" in err and "steps" in err and "numpy/coupled" in err
    code, err = run_on_a_terminal([*ARGS, "--quiet"])
    assert code == 0 and "steps" not in err


def test_no_bar_for_work_shorter_than_the_delay():
    code, err = run_on_a_terminal(["--backend", "numpy", "--epochs", "50"], delay="3600")
    assert code == 0 and "steps" not in err


def test_no_bar_into_a_pipe():
    p = subprocess.run([sys.executable, "-m", "xreg", *ARGS], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stderr == "" and "numpy/coupled" in p.stdout


def test_ctrl_c_stops_with_one_line_and_no_file(tmp_path):
    out = tmp_path / "c.json"
    p = subprocess.Popen([sys.executable, "-m", "xreg", "--backend", "numpy", "--epochs", "200000", "--json", str(out)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(2.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == "error: interrupted\n"
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_sigterm_and_ctrl_c_stop_a_long_jax_grid_within_seconds(tmp_path):
    """A sweep's grid is one long compiled computation: it runs in a worker thread while the main thread
    waits in short slices, so SIGTERM (143) and Ctrl-C (130) end the process within seconds, leaving no file.
    The grid is far longer than the wait on any CPU (5000 points x 50000 epochs); the two processes run at once."""
    cases = ((signal.SIGTERM, 143, "error: terminated\n"), (signal.SIGINT, 130, "error: interrupted\n"))
    procs = [subprocess.Popen([sys.executable, "-m", "xreg", "sweep", "--sweep", "lr=log:1e-3:1:5000", "--epochs", "50000",
                               "--verify", "0", "--json", str(tmp_path / f"{code}.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _, code, _ in cases]  # fmt: skip
    time.sleep(14.0)  # past the imports and into the grid (two processes sharing the cores)
    assert all(p.poll() is None for p in procs)
    for p, (sig, _, _) in zip(procs, cases):
        p.send_signal(sig)
    t0 = time.monotonic()
    for p, (_, code, said) in zip(procs, cases):
        _, err = p.communicate(timeout=60)
        assert p.returncode == code and err.endswith(said), (p.returncode, err[-300:])
    assert time.monotonic() - t0 < 10
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_xreg_is_still_loading_is_one_line():
    """SIGINT while xreg's modules are still importing (before any command runs): one line and 130, never a
    traceback. The signal is sent from inside the import of numpy, deterministically, whatever the CPU."""
    code = (
        "import importlib.abc, os, signal, sys\n"
        "class Interrupt(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'numpy':\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "sys.argv = ['xreg', '--epochs', '2']\n"
        "from xreg._main import run\n"
        "sys.exit(run())\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stderr, p.stdout) == (130, "error: interrupted\n", ""), p.stderr
