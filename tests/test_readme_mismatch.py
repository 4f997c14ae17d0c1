"""The README's walk-through "My numbers don't match PyTorch": its commands run as printed, and the
printed outputs are what the commands print today (examples/mismatch/)."""

import re
import runpy
import sys
from pathlib import Path

import pytest

from helpers import assert_same_text
from xreg.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def block_after(command: str) -> str:
    """The output printed under ``$ <command>`` in the README (up to the closing fence or the next $)."""
    start = README.index(f"$ {command}\n") + len(command) + 3
    end = min(i for i in (README.find("\n$ ", start), README.find("\n```", start)) if i > 0)
    return README[start:end]


def test_update_walkthrough(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    cmd = ".venv/bin/xreg diagnose --update examples/mismatch/scratch.py:step --lr 0.05 --lam 0.1"
    assert main(cmd.split()[1:]) == 0
    assert_same_text(capsys.readouterr().out.strip(), block_after(cmd).strip())


def test_translate_walkthrough(capsys):
    cmd = ".venv/bin/xreg translate --from torch.adam --lr 1e-3 --weight-decay 1e-4 --no-decay bias --n 1096"
    assert main(cmd.split()[1:]) == 0
    assert capsys.readouterr().out.strip() == block_after(cmd).strip()


def test_recorded_pair_walkthrough(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["record_pair.py", str(tmp_path)])
    runpy.run_path(str(ROOT / "examples/mismatch/record_pair.py"), run_name="__main__")
    capsys.readouterr()
    assert main(["diagnose", str(tmp_path / "torch.npz"), str(tmp_path / "optax.npz")]) == 1
    out = capsys.readouterr().out.replace(str(tmp_path), "/tmp/pair")
    shown = block_after(".venv/bin/xreg diagnose /tmp/pair/torch.npz /tmp/pair/optax.npz")
    assert_same_text(out.strip(), shown.strip())
    with pytest.raises(SystemExit, match="exists; record into an empty folder"):  # nothing a user wrote is overwritten
        runpy.run_path(str(ROOT / "examples/mismatch/record_pair.py"), run_name="__main__")
    monkeypatch.setattr(sys, "argv", ["record_pair.py", str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="does not exist"):  # at once, before any training
        runpy.run_path(str(ROOT / "examples/mismatch/record_pair.py"), run_name="__main__")
    assert re.search(r"cause: coupled-vs-decoupled", out)
    from xreg.testing import assert_trajectories_close

    with pytest.raises(AssertionError, match="part at step 1: .*Diagnosed cause: coupled-vs-decoupled"):  # names aligned
        assert_trajectories_close(str(tmp_path / "torch.npz"), str(tmp_path / "optax.npz"))


def test_main_job_block_is_what_it_prints(capsys):
    """README 'What the main job prints' is today's output of the default run."""
    assert main([]) == 1
    out = capsys.readouterr().out
    start = README.index("```\ndata: default (1096 train / 274 test rows") + 4
    assert_same_text(out, README[start : README.index("```\n", start)])
