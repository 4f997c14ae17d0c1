"""--explain and the README's optimizer table come from the builders the JAX backend runs."""

import sys
from pathlib import Path

import pytest

from xreg import optimizers
from xreg.cli import main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.mark.parametrize("name", list(optimizers.OPTIMIZERS))
def test_explain_prints_torch_exact_and_naive(name, capsys):
    assert main(["--explain", name]) == 0
    out = capsys.readouterr().out
    assert f"{optimizers.get(name).source}(" in out  # torch.optim.SGD(, keras.optimizers.Adam(
    assert "exact optax" in out and "naive optax port" in out and "differs:" in out


def test_readme_table_is_current():
    import conventions_table

    text = (ROOT / "README.md").read_text()
    assert conventions_table.readme_with_table(text) == text, "run scripts/conventions_table.py --write"
