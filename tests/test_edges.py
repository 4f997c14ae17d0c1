"""Issue 11: a non-finite loss is a divergence; a lambda schedule is checked on every epoch before any
run; conflicting or ignored flags and flag prefixes are errors; faults (SIGTERM, a full file system, a
closed pipe, a race for one path) end with one line, a documented status and no debris; derived runs
whose lam overflows are skipped with the reason. (Bad input: test_bad_input.py; round-off triage:
test_triage.py; float32: test_float32.py.)"""

import json
import signal
import subprocess
import sys
import time

import pytest

from xreg.core.checks import XregInputError
from xreg.cli import main
from xreg.io import files
from xreg import schedules


def test_a_non_finite_loss_is_a_divergence(capsys):
    # lam 1e308: the parameters stay finite (about 1e306) while the penalty and the loss overflow
    assert main(["--lam", "1e308", "--epochs", "2", "--backend", "torch", "--backend", "numpy"]) == 1
    out = capsys.readouterr().out
    assert "numpy/coupled: torch/coupled diverged at step 2; numpy/coupled diverged at step 2" in out, out


@pytest.mark.parametrize("expr, message", [
    ("1/(epoch - 3)**2", "fails at epoch 3: ZeroDivisionError"),
    ("-1", "negative at epoch 0"),
    ("1 - epoch/2", "negative at epoch 3"),
    ("10.0**(epoch*100)", "epoch 4"),
    ("9**9**9", "fails at epoch 0: OverflowError"),
    ("log(epoch - 1)", "epoch 0"),
    ("epoch" + "+epoch" * 300, "longer than 500 characters"),
])  # fmt: skip
def test_lambda_schedules_are_checked_on_every_epoch(expr, message):
    with pytest.raises(XregInputError, match=None) as err:
        _for_run({"expr": expr}, 10)
    assert message in str(err.value)


def _for_run(options, calls):
    return dict(schedules.for_run("lambda", schedules.resolve("lambda", options), schedules.Context(calls)))


def test_constant_expressions_are_schedules():
    assert _for_run({"expr": "0"}, 3)["expr"] == "0"
    assert _for_run({"expr": "1/(1 + epoch)"}, 1000)["expr"] == "1/(1 + epoch)"


@pytest.mark.parametrize("argv, message", [
    (["--opt", "momentum=0.9", "--momentum", "0.1"], "--momentum 0.1 and --opt momentum=0.9 disagree"),
    (["--map-labels"], "--map-labels maps the labels of a --data"),
    (["--decoupled-scale", "schedule"], "read by the decoupled convention only"),
    (["--explain", "adam", "--lr", "-1"], "'lr'"),
    (["--epoch", "3"], "unrecognized arguments: --epoch"),
    (["--schedule", "lambda", "--schedule-opt", "expr=-1"], "negative at epoch 0"),
])  # fmt: skip
def test_conflicting_ignored_and_abbreviated_flags(argv, message, capsys):
    assert main(["--epochs", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err


# ---- issue 11, faults: real signals, a real pipe, a real file-size limit --------------------------------------


def _xreg(*argv, **kw):
    return subprocess.Popen([sys.executable, "-m", "xreg", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)  # fmt: skip


def test_sigterm_stops_with_one_line_and_no_file(tmp_path):
    out = tmp_path / "t.json"
    p = _xreg("--backend", "numpy", "--epochs", "200000", "--json", str(out))
    time.sleep(2.0)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143 and err == "error: terminated\n"
    assert list(tmp_path.iterdir()) == []


def test_a_full_file_system_is_one_line_exit_3_and_no_debris(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse the write with EFBIG, as a full disk refuses with ENOSPC."""
    out = tmp_path / "big.json"
    # the limit is set by the shell (`ulimit -f 1`: 1 KiB), not by a preexec_fn, which would fork a process JAX runs in
    p = subprocess.Popen(["bash", "-c", 'ulimit -f 1 && exec "$0" -m xreg "$@"', sys.executable, "--epochs", "2",
                          "--backend", "numpy", "--json", str(out)], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)  # fmt: skip
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3 and err == f"error: could not write the output: File too large: '{out}'\n", err
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary


def test_a_closed_pipe_is_one_line_exit_141():
    p = _xreg("--epochs", "2", "--backend", "numpy", "--json", "-")
    p.stdout.close()  # the reader leaves before anything is written, as `| head -0` does
    err = p.stderr.read()
    p.stderr.close()
    assert p.wait(timeout=120) == 141 and "Traceback" not in err  # (the table goes to stderr with --json -)
    assert err.splitlines()[-1] == "error: standard output was closed before the output was written (broken pipe)"


def test_the_final_name_is_claimed_exclusively(tmp_path):
    """Two writers race for one new path: the second finds it taken (created after its check) and is refused."""
    path = tmp_path / "race.json"
    files.write_atomic(path, "first")
    with pytest.raises(FileExistsError, match="exists; pass --force"):
        files._write(path, "second", force=False)  # past the check, as a writer that lost the race
    assert path.read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["race.json"]
    files._write(path, "second", force=True)
    assert path.read_text() == "second"


# ---- issue 11, item 11: a derived run whose lam overflows; lam 0 --------------------------------------------
def test_a_derived_lam_that_overflows_is_skipped_with_its_reason(capsys):
    assert main(["--lam", "2e305", "--epochs", "2", "--json", "-"]) == 1  # 1: scratch lam=2e305 is another rule
    doc = json.loads(capsys.readouterr().out)
    skipped = [r for r in doc["runs"] if r["status"] == "skipped"]
    assert [r["label"] for r in skipped] == ["numpy/scratch@lam=inf"]
    assert "lam*m = 2e+305*1096, beyond the largest float" in skipped[0]["explanation"]
    assert "reproduces" not in json.dumps(doc)  # no 'lam=inf reproduces the reference'


def test_lam_zero_makes_each_run_once(capsys):
    assert main(["--lam", "0", "--epochs", "2", "--json", "-"]) == 0
    labels = [r["label"] for r in json.loads(capsys.readouterr().out)["runs"]]
    assert len(labels) == len(set(labels)) and labels.count("numpy/scratch") == 1
