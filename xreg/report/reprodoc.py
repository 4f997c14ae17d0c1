"""A reproduced result as a summary, a JSON document and one figure (``xreg reproduce``)."""

from __future__ import annotations

import io
import json
from dataclasses import asdict

import numpy as np

from xreg.analysis.reproduce import USABLE
from xreg.report.jsondoc import _clean, versions


def summary(results) -> str:
    p0, r0, _ = results[0]
    lines = [f"Loshchilov & Hutter, decoupled weight decay: {r0.spec.model} regression on {r0.data.name}, "
             f"{r0.data.n_train} train / {r0.data.X_test.shape[0]} test rows, {r0.spec.epochs} epochs (full batch), "
             f"cosine schedule, {r0.spec.dtype}; each grid {' x '.join(str(len(a.values)) for a in r0.axes)}",
             "slope = d log10(best lam) / d log10(lr) over the lr rows that train (row's best test accuracy within "
             f"{USABLE:g} of the grid's best)", ""]  # fmt: skip
    head = ["optimizer", "slope", "rows used", "best lam range", "best test error", "at lr, lam", "grid s", "verified"]
    rows = []
    for p, r, c in results:
        lam = np.asarray(c.best_lam)
        ok = sum(v.verdict == "match" for v in r.verified)
        rows.append([p.name, f"{c.slope:+.2f}", f"{len(c.lrs)}/{len(r.axes[0].values)}",
                     f"{lam.min():.2g}..{lam.max():.2g}" if lam.size else "-", f"{c.best_test_error:.4f}",
                     f"{c.best_point['lr']:.3g}, {c.best_point['lam']:.3g}", f"{r.seconds.get('grid', 0):.1f}",
                     f"{ok}/{len(r.verified)} torch"])  # fmt: skip
    widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def to_json(results) -> dict:
    return _clean({
        "xreg_reproduce_version": 1,
        "scenario": "decoupling",
        "versions": versions(),
        "panels": [{
            "name": p.name,
            "spec": r.spec.to_json(),
            "axes": {a.name: list(a.values) for a in r.axes},
            "test_error": 1 - r.grid["test_accuracy"],
            "final_loss": r.grid["final_loss"],
            "claim": asdict(c),
            "verified": [{"point": v.point, "backend": v.backend, "max_param_gap": v.max_param_gap,
                          "tolerance": v.tolerance, "verdict": v.verdict} for v in r.verified],
            "seconds": r.seconds,
        } for p, r, c in results],
    })  # fmt: skip


def dumps(results) -> str:
    return json.dumps(to_json(results), indent=1, allow_nan=False)


def render_png(results) -> bytes:
    from matplotlib.figure import Figure

    from xreg.analysis.reproduce import best_lam_per_lr
    from xreg.report.sweepdoc import _edges

    fig = Figure(figsize=(4.4 * len(results) + 1.2, 4.4), layout="constrained")
    axs = np.atleast_1d(fig.subplots(1, len(results)))
    errs = [1 - r.grid["test_accuracy"] for _, r, _ in results]
    vmax = float(np.nanpercentile(np.concatenate([e.ravel() for e in errs]), 90))
    vmin = float(np.nanmin([np.nanmin(e) for e in errs]))
    for ax, (p, r, c), err in zip(axs, results, errs):
        a_lr, a_lam = r.axes
        img = ax.pcolormesh(_edges(a_lam), _edges(a_lr), err, shading="flat", cmap="viridis", vmin=vmin, vmax=vmax)
        lr, lam, _ = best_lam_per_lr(r)
        used = np.isin(lr, c.lrs)
        ax.plot(lam[used], lr[used], "o", mfc="white", mec="k", ms=4, label="best lam per lr")
        ax.plot([c.best_point["lam"]], [c.best_point["lr"]], "r*", ms=12, label="best")
        ax.set(xscale="log", yscale="log", xlabel="lam", ylabel="lr",
               title=f"{p.name}\nslope {c.slope:+.2f}, best test error {c.best_test_error:.3f}")  # fmt: skip
        ax.legend(loc="lower left", fontsize=7)
    fig.colorbar(img, ax=list(axs), label="final test error")
    fig.suptitle("Decoupled weight decay (Loshchilov & Hutter 2019): final test error over lr x lam; "
                 "slope = d log10(best lam) / d log10(lr)")  # fmt: skip
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return buf.getvalue()
