"""Test helpers: run several backends on one spec, measure the largest parameter gap, and check that
two runs agree on everything they record (parameters, batch loss, penalty, per-epoch metrics)."""

from __future__ import annotations

import numpy as np

from xreg import backends
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory


def train_all(spec: ExperimentSpec, data: Dataset, runs) -> dict[str, Trajectory]:
    """``runs`` is a list of (backend, convention[, port]) tuples; keys are 'backend/convention[/port]'."""
    out = {}
    for run in runs:
        backend, convention, *port = run
        s = spec.replace(convention=convention, port=port[0] if port else "exact")
        out["/".join(run)] = backends.train(backend, s, data)
    return out


def max_gap(a: Trajectory, b: Trajectory) -> float:
    """Largest |theta_a - theta_b| over every step and parameter."""
    assert a.flat.shape == b.flat.shape
    return float(np.max(np.abs(a.flat - b.flat)))


def assert_same_run(ref: Trajectory, run: Trajectory, params_atol: float = 1e-12, name: str = "") -> None:
    """``run`` reproduces ``ref``: parameters to ``params_atol``; the recorded batch loss, penalty and
    train loss to a relative 1e-10 or 1e-12 absolute (they are computed from those parameters; a batch fit
    to a loss of 1e-6 has logits of ~10 and an absolute round-off of ~1e-15); accuracies to one row
    (a prediction exactly on the boundary may round either way)."""
    assert max_gap(ref, run) <= params_atol, (name, max_gap(ref, run))
    for field in ("loss", "penalty", "train_loss"):
        np.testing.assert_allclose(getattr(run, field), getattr(ref, field), rtol=1e-10, atol=1e-12, err_msg=f"{name} {field}")
    for field in ("train_accuracy", "test_accuracy"):
        a, b = getattr(ref, field), getattr(run, field)
        assert np.array_equal(np.isnan(a), np.isnan(b)), (name, field)
        ok = ~np.isnan(a)
        assert np.all(np.abs(a[ok] - b[ok]) <= 0.01), (name, field)


# ---- golden outputs at the digits that hold on every CPU ---------------------------------------------------
import re  # noqa: E402

NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
ROUND_OFF_SIZE = 1e-13  # gaps this small are round-off of some CPU's kernels: far below every tolerance shown
STABLE_REL = 1e-9  # other numbers: a fit or a sum may move in its last digits with the BLAS build


def _close(a: str, b: str) -> bool:
    if a == b:
        return True
    x, y = float(a), float(b)
    if abs(x) < ROUND_OFF_SIZE and abs(y) < ROUND_OFF_SIZE:
        return True
    return abs(x - y) <= STABLE_REL * max(abs(x), abs(y))


def assert_same_text(got: str, want: str, what: str = "output") -> None:
    """``got`` is ``want`` in every word and layout, and in every number to the digits that do not depend on
    the CPU: gaps under ROUND_OFF_SIZE both (round-off), the rest to a relative STABLE_REL."""
    gw, ww = NUMBER.split(got), NUMBER.split(want)
    gn, wn = NUMBER.findall(got), NUMBER.findall(want)
    assert gw == ww and len(gn) == len(wn), f"{what}: the words differ:\n{got}\n---- expected ----\n{want}"
    bad = [(g, w) for g, w in zip(gn, wn) if not _close(g, w)]
    assert not bad, f"{what}: numbers differ beyond round-off: {bad[:5]}"


def assert_same_picture(got_png, want_png, max_changed: float = 0.02) -> None:
    """Two PNG figures show the same thing: the same size, and at most ``max_changed`` of the pixels differ
    (a round-off line of a deviation panel moves with the CPU; the axes, curves and text stay)."""
    import matplotlib.image

    a, b = matplotlib.image.imread(got_png), matplotlib.image.imread(want_png)
    assert a.shape == b.shape, (a.shape, b.shape)
    changed = float(np.mean(np.any(np.abs(a - b) > 0.1, axis=-1)))
    assert changed <= max_changed, f"{changed:.1%} of the pixels differ"
