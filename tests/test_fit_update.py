"""Issue 9, ``xreg diagnose --update FILE.py:FUNC`` / ``--trajectory``: the user's own step function,
fitted against every convention and verified by re-running torch. The expected answers come from the
code as written (the classic scratch loop divides lam*beta by n: torch weight_decay = lam/n), and the
printed fix is applied to the code and checked against plain torch.optim.SGD."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from xreg.cli import main
from xreg.record import Recorder
from xreg.testing import assert_trajectories_close

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = (ROOT / "examples/mismatch/scratch.py").read_text()  # the README's classic step
CLASSIC = "(data_grad + lam * beta) / n"
assert f"grad = {CLASSIC}" in EXAMPLE
SCRATCH = EXAMPLE.replace("{", "{{").replace("}", "}}").replace(f"grad = {CLASSIC}", "grad = {grad}")


def write(tmp_path, grad, name="user.py"):
    path = tmp_path / name
    path.write_text(SCRATCH.format(grad=grad))
    return path


def diagnose(capsys, *argv):
    code = main(["diagnose", *argv, "--steps", "12", "--json", "-"])
    return code, json.loads(capsys.readouterr().out)


def test_the_classic_scratch_loop_is_scratch_with_lam_over_n(tmp_path, capsys, default_data):
    n, lam = default_data.n_train, 0.1
    code, doc = diagnose(capsys, "--update", f"{write(tmp_path, CLASSIC)}:step", "--lam", str(lam))
    assert code == 0 and doc["convention"] == "scratch" and doc["bias_decayed"] is True
    assert doc["torch_weight_decay"] == pytest.approx(lam / n, rel=1e-6) and doc["lam"] == pytest.approx(lam, rel=1e-6)
    assert doc["residual"] <= 16 and "it matches your code" in doc["verified"]
    assert doc["runner_up"]["convention"] == "coupled"  # the same arithmetic, with lam/n as torch's own lam
    assert doc["fix"].startswith("grad = data_grad/n + lam*beta")


def test_the_printed_fix_makes_it_torch(tmp_path, capsys, default_data):
    fixed = write(tmp_path, "data_grad / n + lam * beta", "fixed.py")  # the fix, applied by hand
    code, doc = diagnose(capsys, "--update", f"{fixed}:step", "--lam", "0.1")
    assert code == 0 and doc["convention"] == "coupled" and doc["torch_weight_decay"] == pytest.approx(0.1, rel=1e-9)
    # and against plain torch, not xreg's backend: torch.optim.SGD(weight_decay=lam) from the same start
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("fixed_user", fixed)
    mod = module_from_spec(spec)
    spec.loader.exec_module(mod)
    X, y = default_data.X_train, default_data.y_train
    beta = 0.1 * np.random.default_rng(0).standard_normal(X.shape[1] + 1)
    model = torch.nn.Linear(X.shape[1], 1).double()
    with torch.no_grad():
        model.bias.copy_(torch.as_tensor(beta[:1]))
        model.weight.copy_(torch.as_tensor(beta[None, 1:]))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, weight_decay=0.1)
    ours, theirs = [beta], [beta]
    for _ in range(12):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(torch.as_tensor(X))[:, 0], torch.as_tensor(y)).backward()
        opt.step()
        theirs.append(np.concatenate([model.bias.detach().numpy(), model.weight.detach().numpy()[0]]))
        ours.append(mod.step(ours[-1].copy(), X, y, 0.05, 0.1))
    assert_trajectories_close({"beta": np.array(ours)}, {"beta": np.array(theirs)})


@pytest.mark.parametrize("grad, convention, bias_decayed", [
    ("(data_grad + lam * np.r_[0.0, beta[1:]]) / n", "scratch", False),
    ("data_grad + lam * beta", "sum-loss", True),
    ("data_grad / n + 2 * lam * beta", "no-half", True),
])  # fmt: skip
def test_other_conventions_are_named(tmp_path, capsys, grad, convention, bias_decayed):
    code, doc = diagnose(capsys, "--update", f"{write(tmp_path, grad)}:step", "--lam", "0.1", "--lr", "0.01")
    assert code == 0 and (doc["convention"], doc["bias_decayed"]) == (convention, bias_decayed)
    assert doc["lam"] == pytest.approx(0.1, rel=1e-6)


def test_nothing_fits_says_so_and_shows_the_closest(tmp_path, capsys):
    sign = tmp_path / "sign.py"  # a sign-SGD step: no convention of gradient descent
    sign.write_text(SCRATCH.format(grad="np.sign(data_grad + lam * beta)"))
    code, doc = diagnose(capsys, "--update", f"{sign}:step")
    assert code == 1 and doc["convention"] is None and doc["fits"][0]["residual"] > 16
    assert main(["diagnose", "--update", f"{sign}:step", "--steps", "5"]) == 1
    assert "no convention reproduces your update" in capsys.readouterr().out


def test_a_recorded_trajectory(tmp_path, capsys, default_data):
    X, y, n = default_data.X_train, default_data.y_train, default_data.n_train
    rec = Recorder()
    beta = 0.05 * np.ones(X.shape[1] + 1)
    rec.log({"beta": beta})
    Xb = np.hstack([np.ones((n, 1)), X])
    for _ in range(10):
        beta = beta - 0.05 * (Xb.T @ (1 / (1 + np.exp(-Xb @ beta)) - y) + 0.1 * beta) / n
        rec.log({"beta": beta})
    rec.save(tmp_path / "run.npz")
    code, doc = diagnose(capsys, "--trajectory", str(tmp_path / "run.npz"))
    assert code == 0 and doc["convention"] == "scratch" and doc["torch_weight_decay"] == pytest.approx(0.1 / n, rel=1e-6)


def test_bad_input_one_line(tmp_path, capsys):
    raising = tmp_path / "raising.py"
    raising.write_text("def step(b, X, y, lr, lam):\n    raise RuntimeError('boom')\n")
    short = tmp_path / "short.py"
    short.write_text("def step(b, X, y, lr, lam):\n    return b[:2]\n")
    broken = tmp_path / "broken.py"
    broken.write_text("def step(:\n")
    for argv, message in (
        (["--update", str(raising)], "--update takes FILE.py:FUNCTION"),
        (["--update", f"{tmp_path / 'none.py'}:step"], "does not exist"),
        (["--update", f"{raising}:nope"], "has no function 'nope'"),
        (["--update", f"{raising}:step"], "raised RuntimeError at step 1: boom"),
        (["--update", f"{short}:step"], "returned shape (2,)"),
        (["--update", f"{broken}:step"], "raised SyntaxError"),
        (["--update", f"{short}:step", "--trajectory", "x.npz"], "alone"),
        (["--update", f"{short}:step", "--model", "mlp"], "logistic or linear"),
        (["--update", f"{short}:step", "--lr", "0"], "lr"),
    ):
        assert main(["diagnose", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (argv, err)


def test_verification_reruns_torch_and_can_refuse(default_data):
    from xreg.analysis import fit_update as fu

    X, y, n = default_data.X_train, default_data.y_train, default_data.n_train
    Xb = np.hstack([np.ones((n, 1)), X])
    P = [0.1 * np.ones(X.shape[1] + 1)]
    for _ in range(8):
        P.append(P[-1] - 0.05 * (Xb.T @ (1 / (1 + np.exp(-Xb @ P[-1])) - y) / n + 0.01 * P[-1]))
    P = np.array(P)
    result = fu.fit(P, X, y, 0.05, 0.01)
    assert (result.best.convention, result.best.bias_decayed) == ("coupled", True)
    assert fu.verify(result, P, default_data)[0]
    result.best.coefficient *= 1.0 + 1e-6  # a fit one part in a million off: torch must refuse it
    ok, text = fu.verify(result, P, default_data)
    assert not ok and "does NOT match" in text
