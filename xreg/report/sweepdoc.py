"""A :class:`SweepResult` as text (the best points and the agreement of the verified ones), as a JSON
document, and as a figure (curves for one axis, heat maps for two)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from xreg.analysis.sweep import SweepResult
from xreg.report.jsondoc import _clean, versions

METRICS = {"final_loss": "final loss", "train_accuracy": "train acc", "test_accuracy": "test acc"}


def default_rank(r: SweepResult) -> str:
    """Test accuracy where there is one (a classifier with a test split), else the final training loss."""
    return "test_accuracy" if np.isfinite(r.grid["test_accuracy"]).any() else "final_loss"


def table(r: SweepResult, rank: str | None = None, top: int = 5) -> str:
    rank = rank or default_rank(r)
    names = [a.name for a in r.axes]
    head = names + list(METRICS.values())
    rows = []
    for idx in r.ranking(rank)[:top]:
        rows.append([f"{r.axes[i].values[j]:.4g}" for i, j in enumerate(idx)]
                    + [_num(r.grid[k][idx], k) for k in METRICS])  # fmt: skip
    g = r.grid
    lines = [f"grid: {' x '.join(a.text for a in r.axes)} = {int(np.prod(r.shape))} runs in jax "
             f"({g['structures']} structure(s), {g['compilations']} compilation(s), {len(g['devices'])} device(s): "
             f"{', '.join(g['devices'])}) in {r.seconds.get('grid', 0):.2f} s",
             f"best {min(top, len(rows))} by {METRICS[rank]}:"]  # fmt: skip
    lines += _grid_text(head, rows)
    if r.verified:
        lines.append("")
        lines.append("verified points (final parameters of the grid against a full run of another backend):")
        vrows = [[f"{v.point[n]:.4g}" for n in names] + [v.backend, _num(v.final_loss, "final_loss"),
                 _num(v.grid_final_loss, "final_loss"), f"{v.max_param_gap:.3e}", f"{v.tolerance:.3e}",
                 v.verdict + (f" ({v.note})" if v.note else "")] for v in r.verified]  # fmt: skip
        lines += _grid_text(names + ["backend", "its final loss", "jax grid", "max |dw|", "tolerance", "verdict"], vrows)
        n_ok = sum(v.agrees for v in r.verified)
        lines.append(f"{n_ok}/{len(r.verified)} verified points agree with the grid"
                     + ("" if r.all_agree else ": the grid cannot be trusted where they do not"))  # fmt: skip
    return "\n".join(lines)


def _num(v: float, key: str) -> str:
    if not np.isfinite(v):
        return "nan"
    return f"{v:.6g}" if key == "final_loss" else f"{v:.4f}"


def _grid_text(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    out = ["  ".join(str(h).ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in rows]
    return out


def to_json(r: SweepResult, rank: str | None = None, top: int = 5) -> dict[str, Any]:
    rank = rank or default_rank(r)
    g = r.grid
    return _clean({
        "xreg_sweep_version": 1,
        "versions": versions(),
        "spec": r.spec.to_json(),
        "data": {"name": r.data.name, "n_train": r.data.n_train, "n_test": int(r.data.X_test.shape[0]),
                 "n_features": r.data.n_features},
        "sweep": {
            "axes": {a.name: list(a.values) for a in r.axes},
            "spacing": {a.name: "log" if a.log else "linear" for a in r.axes},
            "shape": list(r.shape),
            "order": "C (the last axis varies fastest)",
            "structures": g["structures"],
            "compilations": g["compilations"],
            "seconds": r.seconds,
        },
        "runs": [{
            "backend": "jax",
            "convention": r.spec.convention,
            "final_loss": g["final_loss"],
            "train_accuracy": g["train_accuracy"],
            "test_accuracy": g["test_accuracy"],
            "final_params": g["final_params"],
            "devices": g["devices"],
        }],
        "verified": [{
            "index": list(v.index), "point": v.point, "backend": v.backend, "convention": r.spec.convention,
            "final_loss": v.final_loss, "grid_final_loss": v.grid_final_loss, "max_param_gap": v.max_param_gap,
            "tolerance": v.tolerance, "verdict": v.verdict, "note": v.note,
        } for v in r.verified],
        "all_agree": r.all_agree,
        "best": {"by": rank, "points": [{"index": list(i), **r.point(i), **{k: g[k][i] for k in METRICS}}
                                        for i in r.ranking(rank)[:top]]},
    })  # fmt: skip


def dumps(r: SweepResult, rank: str | None = None, top: int = 5) -> str:
    return json.dumps(to_json(r, rank, top), indent=1, allow_nan=False)


def render_png(r: SweepResult, rank: str | None = None) -> bytes:
    """One axis: final loss and accuracies against it. Two axes: a heat map of each metric, the best
    point marked. More axes cannot be drawn on a page (the CLI refuses --plot for them)."""
    from matplotlib.figure import Figure

    rank = rank or default_rank(r)
    shown = [k for k in METRICS if k == "final_loss" or np.isfinite(r.grid[k]).any()]
    fig = Figure(figsize=(5.2 * len(shown), 4.4))
    axs = np.atleast_1d(fig.subplots(1, len(shown)))
    best = r.ranking(rank)[0]
    if len(r.axes) == 1:
        (a,) = r.axes
        for ax, k in zip(axs, shown):
            ax.plot(a.values, r.grid[k], "o-", ms=3, lw=1.2)
            for v in r.verified:
                ax.plot([v.point[a.name]], [v.final_loss] if k == "final_loss" else [np.nan], "kx", ms=7)
            ax.axvline(a.values[best[0]], color="C3", lw=0.8, ls="--")
            ax.set(xscale="log" if a.log else "linear", xlabel=a.name, ylabel=METRICS[k], title=f"{METRICS[k]} vs {a.name}")
    else:
        a0, a1 = r.axes[:2]
        for ax, k in zip(axs, shown):
            img = ax.pcolormesh(_edges(a1), _edges(a0), r.grid[k], shading="flat",
                                cmap="viridis" if k == "final_loss" else "viridis_r")  # fmt: skip
            fig.colorbar(img, ax=ax, label=METRICS[k])
            ax.plot([a1.values[best[1]]], [a0.values[best[0]]], "r*", ms=12, label=f"best by {METRICS[rank]}")
            ax.set(xscale="log" if a1.log else "linear", yscale="log" if a0.log else "linear", xlabel=a1.name,
                   ylabel=a0.name, title=METRICS[k])  # fmt: skip
            ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"{r.spec.model} + {r.spec.optimizer} ({r.spec.convention}), {r.spec.epochs} epochs, {r.data.name}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _edges(a) -> np.ndarray:
    """Cell edges around the axis values (geometric midpoints on a log axis)."""
    v = np.asarray(a.values, float)
    if len(v) == 1:
        return np.array([v[0] * 0.9, v[0] * 1.1]) if a.log else np.array([v[0] - 0.5, v[0] + 0.5])
    t = np.log(v) if a.log else v
    mid = (t[1:] + t[:-1]) / 2
    e = np.concatenate([[2 * t[0] - mid[0]], mid, [2 * t[-1] - mid[-1]]])
    return np.exp(e) if a.log else e
