"""Gradient accumulation: K micro-batches per optimizer step, torch's (loss/K).backward() each then one step(),
in torch, JAX and NumPy; against a torch loop written by hand; schedules counting optimizer steps; the naive
forms (no 1/K, every row alike), each alone a named mismatch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import assert_same_run
from xreg import backends
from xreg.cli import main
from xreg.core.spec import ExperimentSpec

# 1096 rows in batches of 110: 10 batches an epoch, the last of 106 rows, so a step of 2 ends on 110 + 106
CASES = [
    ("sgd-momentum", {"optimizer": "sgd", "options": {"momentum": 0.9}, "accumulate": 2}),
    ("five", {"optimizer": "sgd", "options": {"momentum": 0.9}, "accumulate": 5, "convention": "l2-loss"}),
    ("adamw-clip-schedule", {"optimizer": "adamw", "convention": "decoupled", "accumulate": 2, "clip_norm": 0.05,
                             "schedule": "StepLR", "schedule_options": {"step_size": 7, "gamma": 0.5}, "schedule_every": "step"}),
    ("mlp-batch-norm-dropout", {"model": "mlp", "norm": "batch", "dropout": 0.1, "optimizer": "sgd", "options": {"momentum": 0.9},
                                "accumulate": 2}),
]  # fmt: skip


def _spec(**kw):
    return ExperimentSpec(**{"lr": 0.05, "lam": 0.01, "epochs": 20, "batch_size": 110, "shuffle": True, **kw})


@pytest.mark.parametrize("name, kw", CASES, ids=[c for c, _ in CASES])
def test_backends_agree_on_accumulated_steps(name, kw, default_data):
    spec = _spec(**kw)
    ref = backends.train("torch", spec, default_data)
    assert ref.flat.shape[0] == 20 * 10 // spec.accumulate + 1  # a trajectory step is an optimizer step
    for b in ("jax", "numpy"):
        assert_same_run(ref, backends.train(b, spec, default_data), 1e-12, f"{b} {name}")
    plain = backends.train("numpy", spec.replace(accumulate=1), default_data)  # the batches' steps, one each
    K = spec.accumulate
    assert np.max(np.abs(ref.flat[1:] - plain.flat[K::K])) > 1e-4  # K steps of one batch are not one step of K


def test_accumulation_is_a_torch_loop_of_loss_over_k(default_data):
    # written as a torch user writes it, outside xreg: zero_grad, then (loss_j / K).backward() for K micro-batches, step()
    spec = _spec(optimizer="sgd", options={"momentum": 0.9}, accumulate=2, shuffle=False, lam=0.0, epochs=3)
    run = backends.train("jax", spec, default_data)
    X, y = (torch.tensor(a, dtype=torch.float64) for a in (default_data.X_train, default_data.y_train))
    model = torch.nn.Linear(X.shape[1], 1, dtype=torch.float64)
    torch.nn.init.zeros_(model.weight), torch.nn.init.zeros_(model.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    starts = list(range(0, 1096, 110))
    rows = [np.zeros(X.shape[1] + 1)]
    for _ in range(3):
        for k in range(0, len(starts), 2):
            opt.zero_grad()
            for s in starts[k : k + 2]:
                xb, yb = X[s : s + 110], y[s : s + 110]
                (torch.nn.functional.binary_cross_entropy_with_logits(model(xb)[:, 0], yb) / 2).backward()
            opt.step()
            rows.append(np.concatenate([p.detach().numpy().ravel() for p in model.parameters()]))
    assert np.max(np.abs(run.flat - np.array(rows))) <= 1e-12


@pytest.mark.parametrize("code", ["accumulate-sum", "accumulate-global-mean"])
def test_each_naive_accumulation_alone_is_a_named_mismatch(code, capsys):
    base = ["--lam", "0", "--momentum", "0.9", "--epochs", "10", "--batch-size", "110", "--accumulate", "2", "--backend", "torch",
            "--backend", "jax"]  # fmt: skip
    assert main(base + ["--naive"]) == 0  # optax.sgd accumulated as torch's loss/K: exact
    capsys.readouterr()
    assert main(base + ["--naive-accumulate", code]) == 1
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("jax/coupled/naive"))
    # the sum parts at once; the global mean where the first step with a short micro-batch is (step 5: 110 + 106 rows)
    assert f"mismatch from step {1 if code == 'accumulate-sum' else 5}" in row, out
    assert f"jax/coupled/naive: {code}: " in out, out
