"""Resuming (--resume-at K): every backend saves its whole state after K optimizer steps, rebuilds from it and goes
on; the run equals the uninterrupted one (torch through torch.save / torch.load(weights_only=True) of the model's,
the optimizer's and the scheduler's state_dicts). The classic resume bugs, each alone a mismatch from step K+1."""

from __future__ import annotations

import pytest

from tests.helpers import max_gap
from xreg import backends
from xreg.cli import main
from xreg.core.spec import ExperimentSpec

CASES = [
    ("adam-steplr-per-step", {"optimizer": "adam", "schedule": "StepLR", "schedule_options": {"step_size": 5}, "schedule_every": "step"}),
    ("sgd-momentum-sequential", {"optimizer": "sgd", "options": {"momentum": 0.9}, "schedule": "SequentialLR",
                                 "schedule_options": {"schedulers": "LinearLR(), CosineAnnealingLR(T_max=10)", "milestones": (5,)}}),
    ("muon-mlp-batch-norm", {"model": "mlp", "norm": "batch", "optimizer": "muon", "convention": "decoupled"}),
    ("adamw-accumulated-onecycle", {"optimizer": "adamw", "convention": "decoupled", "accumulate": 2, "schedule": "OneCycleLR",
                                    "schedule_options": {"cycle_momentum": False}, "schedule_every": "step"}),
]  # fmt: skip


@pytest.mark.parametrize("name, kw", CASES, ids=[c for c, _ in CASES])
def test_a_resumed_run_is_the_uninterrupted_run(name, kw, default_data):
    spec = ExperimentSpec(**{"lr": 0.01, "lam": 0.01, "epochs": 8, "batch_size": 110, "shuffle": True, **kw})
    for b in ("torch", "numpy", "jax"):
        whole = backends.train(b, spec, default_data)
        resumed = backends.train(b, spec.replace(resume_at=17), default_data)
        assert max_gap(whole, resumed) == 0.0, (b, name)  # the same state, so the same arithmetic, bit for bit


NAIVE = [("resume-fresh-optimizer", ["--optimizer", "adam"]), ("resume-step-count", ["--optimizer", "adam"]),
         ("resume-schedule", ["--momentum", "0.9", "--schedule", "StepLR(step_size=20)", "--schedule-every", "step"])]  # fmt: skip


@pytest.mark.parametrize("code, argv", NAIVE, ids=[c for c, _ in NAIVE])
def test_each_resume_bug_alone_parts_at_the_resumed_step(code, argv, capsys):
    base = ["--lam", "0", "--epochs", "6", "--batch-size", "110", "--resume-at", "30", "--backend", "torch", "--backend", "jax"]
    assert main(base + argv + ["--naive-resume", code]) == 1
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.startswith("jax/coupled/naive"))
    assert "mismatch from step 31" in row, out  # the naive port matched torch for the 30 steps before the resume
    assert f"{code}: " in out, out
