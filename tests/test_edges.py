"""Issue 11 (first items): a non-finite loss is a divergence; a lambda schedule is checked on every
epoch before any run; conflicting or ignored flags and flag prefixes are errors."""

import pytest

from xreg.checks import XregInputError
from xreg.cli import main
from xreg.semantics import schedules


def test_a_non_finite_loss_is_a_divergence(capsys):
    # lam 1e308: the parameters stay finite (about 1e306) while the penalty and the loss overflow
    assert main(["--lam", "1e308", "--epochs", "2", "--backend", "torch", "--backend", "numpy"]) == 1
    out = capsys.readouterr().out
    assert "numpy/torch: torch/torch diverged at step 2; numpy/torch diverged at step 2" in out, out


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
        schedules.resolve("lambda", {"expr": expr}, epochs=10)
    assert message in str(err.value)


def test_constant_expressions_are_schedules():
    assert schedules.resolve("lambda", {"expr": "0"}, epochs=3)["expr"] == "0"
    assert schedules.resolve("lambda", {"expr": "1/(1 + epoch)"}, epochs=1000)["expr"] == "1/(1 + epoch)"


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
