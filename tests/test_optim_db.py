"""Issue 12: PyTorch's own optimizer-test configurations as the acceptance table.

``torch.testing._internal.common_optimizers.optim_db`` is the list PyTorch's optimizer tests are fed:
per optimizer class, the kwargs of each configuration (``maximize``, tensor ``lr``, ``amsgrad``,
``decoupled_weight_decay``, ...). Every configuration (cpu, float64) of every class xreg's table knows is
run through xreg exactly as a user would state it (``weight_decay`` -> lam, ``decoupled_weight_decay`` ->
the decoupled convention, the rest as torch-named options) and each backend is held to a plain torch loop
with the class built from the same kwargs, to 1e-12. The plain loop runs with torch's default dtype set to
float64, the run's: torch keeps NAdam's ``mu_product`` and ASGD's ``eta`` in the default dtype, and xreg
lays that state out in the run's dtype (with a float32 default they are float32 numbers in a float64 run:
diagnose names that difference, ``float32_mu_product``). ``expecttest`` (a test dependency) is what
``common_utils`` imports.
"""

import numpy as np
import pytest
import torch
from torch.testing._internal.common_optimizers import optim_db

from user_loops import Both, problem, torch_loop
from xreg import backends
from xreg.core.spec import Dataset, ExperimentSpec
from xreg import optimizers

pytestmark = pytest.mark.slow  # the full tier only (pytest -m 'not slow' is the fast one)

STEPS = 12  # past RAdam's rectification threshold (t > 5)


def _configs():
    out = []
    for info in optim_db:
        name = optimizers.by_name(info.optim_cls.__name__)
        if name is None:
            continue
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # a tensor lr made in a float64 program is float64 (Muon: 1 - lr*wd in its dtype)
        try:
            inputs = info.optim_inputs_func(device="cpu", dtype=torch.float64)
        finally:
            torch.set_default_dtype(default)
        for i, inp in enumerate(inputs):
            out.append(pytest.param(info.optim_cls, name, inp.kwargs, id=f"{name}-{i}-{inp.desc}"))
    return out


CONFIGS = _configs()


def test_every_optimizer_of_the_table_is_in_the_acceptance_table():
    assert {c.values[1] for c in CONFIGS} == set(optimizers.TORCH)  # (Keras's rules: tests/test_keras.py)
    assert len(CONFIGS) >= 77  # torch 2.13: 65 for the ten, 5 Adafactor, 7 Muon


def _spec(name: str, kwargs: dict, init_from: str) -> ExperimentSpec:
    """The configuration as xreg states it: lr (a tensor lr by its value), weight_decay as lam, the
    decoupled flag as the convention, every other kwarg an option."""
    o = dict(kwargs)
    lr = o.pop("lr", None)
    lam = o.pop("weight_decay", optimizers.get(name).default_weight_decay)
    decoupled = o.pop("decoupled_weight_decay", False)
    opt = optimizers.get(name)
    convention = "decoupled" if decoupled else opt.default_convention
    return ExperimentSpec(optimizer=name, lr=float(lr) if lr is not None else opt.default_lr, lam=lam,
                          convention=convention, options=o, epochs=STEPS, init_from=init_from)  # fmt: skip


def make(cls, kwargs, params):
    """The class on the parameters; Muon (2-D parameters only) paired with AdamW on the rest, the same lr
    and weight_decay, as its torch documentation pairs them (xreg's --muon-others default)."""
    if cls is not torch.optim.Muon:
        return cls(params, **kwargs)
    lr, wd = float(kwargs.get("lr", 1e-3)), kwargs.get("weight_decay", 0.1)  # a Python float for AdamW: the tensor lr is Muon's
    return Both([cls([p for p in params if p.ndim == 2], **kwargs),
                 torch.optim.AdamW([p for p in params if p.ndim != 2], lr=lr, weight_decay=wd)])  # fmt: skip


@pytest.mark.parametrize("cls, name, kwargs", CONFIGS)
def test_optim_db_configuration_matches_plain_torch(cls, name, kwargs, default_data, tmp_path):
    X, y, w0, b0 = problem(default_data, rows=64, seed=3)
    start = tmp_path / "start.npz"
    np.savez(start, weight=w0, bias=b0)
    data = Dataset("optim_db", X, y, X[:0], y[:0], tuple(f"x{i}" for i in range(X.shape[1])))
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the scalar state (NAdam's mu_product, ASGD's eta) in the run's dtype
    try:
        plain = torch_loop(X, y, w0, b0, lambda params: make(cls, kwargs, list(params)), STEPS)
    finally:
        torch.set_default_dtype(default)
    spec = _spec(name, kwargs, str(start))
    for b in backends.NAMES:
        run = backends.train(b, spec, data)
        for n in ("weight", "bias"):
            gap = float(np.max(np.abs(run.params[n] - plain.params[n])))
            assert gap <= 1e-12, (b, n, gap)


def test_foreach_and_fused_are_the_same_rule(default_data):
    """The torch backend passes them to the class; other kernels, the same rule: within the tolerance of the
    for-loop path (measured: foreach 0 to 7.8e-16 over 300 steps, fused 0 to 1.1e-16)."""
    from xreg.analysis.agreement import compare_pair

    for name in optimizers.TORCH:
        opt = optimizers.get(name)
        spec = ExperimentSpec(optimizer=name, lr=0.01, lam=0.05, epochs=100, init="normal", seed=2,
                              convention=opt.default_convention)  # fmt: skip
        ref = backends.train("torch", spec, default_data)
        for switch in (k for k in ("foreach", "fused") if k in opt.defaults):  # Muon takes neither
            other = backends.train("torch", spec.replace(options={switch: True}), default_data)
            assert other.meta["torch"] and compare_pair(ref, other).verdict == "match", (name, switch)


def test_maximize_keeps_torch_decay_and_negates_a_penalty(default_data, capsys):
    """maximize: torch's weight_decay still pulls toward 0 (jax/coupled and numpy/coupled match it), while the
    penalty in the loss is negated with the gradient: another rule, said so, with no scratch lam offered."""
    import json

    from xreg.cli import main

    assert main(["--optimizer", "adam", "--opt", "maximize=true", "--epochs", "30", "--lr", "0.01", "--json", "-"]) == 1
    doc = json.loads(capsys.readouterr().out)
    verdict = {p["b"]: p["verdict"] for p in doc["pairs"] if p["a"] == "torch/coupled"}
    assert verdict["jax/coupled"] == verdict["numpy/coupled"] == "match"
    assert verdict["jax/l2-loss"] == "mismatch" and verdict["numpy/scratch"] == "mismatch"
    runs = {r["label"]: r for r in doc["runs"]}
    assert "numpy/scratch@lam" not in " ".join(runs)  # no lam makes scratch equal torch under maximize
    assert "pushes w away from 0" in runs["jax/l2-loss"]["equivalence"]
    assert "scale(-1.0)" in runs["jax/coupled"]["meta"]["chain"]


@pytest.mark.parametrize("flag", ["capturable", "differentiable"])
def test_flags_xreg_cannot_honour_are_refused(flag, capsys):
    from xreg.cli import main

    assert main(["--optimizer", "adam", "--opt", f"{flag}=true", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: torch.optim.Adam({flag}=...) is not supported: ") and err.count("\n") == 1
