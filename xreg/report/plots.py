"""A comparison as a picture: the three graphs users draw by hand (training loss, training accuracy and
test accuracy per epoch, every run overlaid) and each run's deviation from the reference per step on a
log scale, with the match tolerance and each first divergence marked.

Runs that match each other (the same rule in another framework) coincide on the metric panels: they are
drawn as one line whose legend entry lists every run it stands for; on the deviation panel each run
keeps its own line, told apart by its backend's line style. Legends sit outside the data.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from xreg.analysis import agreement
from xreg.analysis.runs import Comparison
from xreg.io.files import write_atomic

FLOOR = 1e-18  # exact zeros (bit-identical steps) are drawn here on the log axis
STYLES = {"torch": "-", "jax": "--", "numpy": ":"}
FORMATS = {".png": "png", ".svg": "svg"}


def coinciding(c: Comparison) -> list[list]:
    """The finished runs grouped by 'matches the group's first run' (same rule, round-off apart)."""
    groups: list[list] = []
    for o in c.outcomes:
        if o.trajectory is None:
            continue
        for g in groups:
            if c.pair(g[0].label, o.label).verdict == "match":
                g.append(o)
                break
        else:
            groups.append([o])
    return groups


def figure(c: Comparison):
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry

    ref = c.reference
    fig = Figure(figsize=(13, 8.4), layout="constrained")
    (ax_loss, ax_train), (ax_test, ax_dev) = fig.subplots(2, 2)
    groups = coinciding(c)
    color = {id(o): f"C{i % 10}" for i, g in enumerate(groups) for o in g}
    classification = any(np.isfinite(o.trajectory.train_accuracy).any() for g in groups for o in g)
    for g in groups:
        t = g[0].trajectory
        label = " = ".join(o.label for o in g)
        epochs = np.arange(1, len(t.train_loss) + 1)
        kw = dict(lw=1.4, color=color[id(g[0])], label=label, marker="o" if len(epochs) <= 30 else None, ms=3)
        ax_loss.plot(epochs, t.train_loss, **kw)
        if classification:
            ax_train.plot(epochs, t.train_accuracy, **kw)
            ax_test.plot(epochs, t.test_accuracy, **kw)
    if not classification:
        for ax in (ax_train, ax_test):
            ax.text(0.5, 0.5, "no accuracy: a regression model", ha="center", va="center", transform=ax.transAxes)
    tol_drawn = False
    for o in c.outcomes:
        t = o.trajectory
        if t is None or o is ref or ref.trajectory is None:
            continue
        p = c.pair(ref.label, o.label)
        steps = t.steps_at
        ax_dev.plot(steps[1:], np.maximum(p.per_step[1:], FLOOR), STYLES.get(o.request.backend, "-"), lw=1.3,
                    color=color[id(o)], label=f"{o.label} ({p.verdict})")  # fmt: skip
        if p.first_divergence_step is not None:
            k = int(np.searchsorted(steps, p.first_divergence_step))
            if k < len(steps):
                ax_dev.plot([steps[k]], [max(p.per_step[k], FLOOR)], "x", color=color[id(o)], ms=9, mew=2)
        if not tol_drawn:
            tol = agreement.tolerance(c.spec.dtype, ref.trajectory.flat, t.flat, t.steps_at)
            ax_dev.plot(steps[1:], tol[1:], "k-", lw=0.8, alpha=0.7, label="match tolerance")
            tol_drawn = True
    if tol_drawn:
        ax_dev.plot([], [], "kx", ms=8, mew=2, label="first divergence")
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", title="training loss")
    ax_train.set(xlabel="epoch", ylabel="accuracy", title="training accuracy")
    ax_test.set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
    ax_dev.set(yscale="log", xlabel="step", ylabel="max |theta - theta_ref|", title=f"deviation from the reference ({ref.label})")
    for ax in (ax_loss, ax_train, ax_test, ax_dev):
        ax.grid(alpha=0.3)
    handles, labels = ax_loss.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)), fontsize=8,
                   title="runs (backend/convention; '=' joins runs that match, drawn once)", title_fontsize=8)  # fmt: skip
    if ax_dev.get_legend_handles_labels()[0]:
        ax_dev.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle(_title(c), fontsize=10)
    return fig


def _title(c: Comparison) -> str:
    """The run in a line (wrapped: a long layer list or training step stays on the page)."""
    import textwrap

    from xreg.report.table import step_text

    s, step = c.spec, step_text(c.spec)
    title = (f"{c.data.name}: {c.architecture.model} ({c.architecture.describe()}) + {s.optimizer}, lr={s.lr:g}, "
             f"lam={s.lam:g}, {s.dtype}" + (f"; {step}" if step else ""))
    return "\n".join(textwrap.wrap(title, 150))


def render(c: Comparison, fmt: str = "png") -> bytes:
    fig = figure(c)
    buf = io.BytesIO()
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}  # no stamps: reproducible bytes
    import matplotlib

    with matplotlib.rc_context({"svg.hashsalt": "xreg"}):  # SVG ids from a fixed salt: the same bytes every run
        fig.savefig(buf, format=fmt, dpi=110, metadata=meta)
    return buf.getvalue()


def render_png(c: Comparison) -> bytes:
    return render(c, "png")


def render_for(c: Comparison, path: str | Path) -> bytes:
    """The figure as PNG or SVG, by the path's suffix (the CLI refuses any other)."""
    return render(c, FORMATS[Path(path).suffix.lower()])


def write_png(c: Comparison, path: str | Path, *, force: bool = False) -> None:
    """Write the figure as PNG or SVG, by the path's suffix."""
    write_atomic(path, render_for(c, path), force=force)
