"""A comparison as a picture: each run's deviation from the reference per step, against the match
tolerance, and each run's training loss per epoch."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from xreg.analysis import compare
from xreg.analysis.runs import Comparison
from xreg.io.files import write_atomic

FLOOR = 1e-18  # exact zeros (bit-identical steps) are drawn here on the log axis


def render_png(c: Comparison) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global backend, no figure registry

    ref = c.reference
    fig = Figure(figsize=(13, 4.8))
    ax_dev, ax_loss = fig.subplots(1, 2)
    tol_drawn = False
    for i, o in enumerate(c.outcomes):
        t = o.trajectory
        color = f"C{i % 10}"  # one color per run in both panels
        if t is None:
            continue
        steps = t.steps_at
        if o is not ref and ref.trajectory is not None:
            p = c.pair(ref.label, o.label)
            ax_dev.plot(steps[1:], np.maximum(p.per_step[1:], FLOOR), label=f"{o.label} ({p.verdict})", lw=1.2,
                        color=color)
            if not tol_drawn:
                tol = compare.tolerance(c.spec.dtype, ref.trajectory.flat, t.flat, t.steps_at)
                ax_dev.plot(steps[1:], tol[1:], "k--", lw=1, label="match tolerance")
                tol_drawn = True
        epochs = np.arange(1, len(t.train_loss) + 1)
        ax_loss.plot(epochs, t.train_loss, label=o.label, lw=1.2, color=color)
    ax_dev.set(yscale="log", xlabel="step", ylabel=f"max |theta - theta_ref|  (ref: {ref.label})",
               title="deviation from the reference")  # fmt: skip
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", title="training loss")
    for ax in (ax_dev, ax_loss):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    s = c.spec
    fig.suptitle(f"{c.data.name}: {c.architecture.model} ({c.architecture.describe()}) + {s.optimizer}, lr={s.lr:g}, lam={s.lam:g}, {s.dtype}", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})  # no version stamp: reproducible bytes
    return buf.getvalue()


def write_png(c: Comparison, path: str | Path, *, force: bool = False) -> None:
    write_atomic(path, render_png(c), force=force)
