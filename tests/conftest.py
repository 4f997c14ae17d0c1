"""Shared fixtures. No global JAX switch: the JAX backend turns on float64 inside its own calls."""

import numpy as np
import pytest

from xreg.core.spec import Dataset
from xreg.io import data


@pytest.fixture(scope="session")
def default_data() -> Dataset:
    return data.default_dataset()


def write_csv(path, X, y, names=None, target="label"):
    names = names or [f"x{i}" for i in range(X.shape[1])]
    lines = [",".join([*names, target])]
    lines += [",".join([*(repr(float(v)) for v in row), repr(float(t))]) for row, t in zip(X, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def user_csv(tmp_path_factory):
    """A user's CSV: 250 rows, 3 features on different scales, labels from a noisy logistic model."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((250, 3)) * [1.0, 3.0, 0.5] + [0.5, -1.0, 2.0]
    y = (rng.random(250) < 1 / (1 + np.exp(-(X @ [1.0, -0.4, 0.8] - 1.2)))).astype(float)
    return write_csv(tmp_path_factory.mktemp("csv") / "user.csv", X, y)


@pytest.fixture(scope="session")
def user_data(user_csv) -> Dataset:
    return data.load_csv(user_csv, "label")


@pytest.fixture
def emulated_kernels():
    """torch runs the bfloat16 kernels xreg's Muon emulates (oneDNN off on an AVX-512-BF16 CPU): exactness
    tests of the emulation hold on any CPU; the other branch is tests/test_muon.py's kernel-floor tests."""
    from xreg.backends.torch import kernels

    try:
        with kernels.as_emulated():
            yield kernels.muon_probe()
    except LookupError as exc:
        pytest.skip(str(exc))


def files_in(tmp_path_factory, name: str, files: dict[str, str]):
    """A fresh folder holding ``files`` (name -> text): the bad-input tables' files."""
    d = tmp_path_factory.mktemp(name)
    for file, text in files.items():
        (d / file).write_text(text)
    return d
