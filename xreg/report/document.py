"""A comparison as a document to keep: ``--report PATH.md`` or ``PATH.html`` (one self-contained file,
the figure embedded as a base64 PNG), and ``--csv PATH`` (every kept step of every run: one row per
step and run, with its batch loss and every parameter).

The report holds the spec, the update each run used, the table, the verdicts with their causes, the
figure, and the equivalent settings as code that pastes and runs (torch, and optax over the names
``optax`` and ``xreg``; see :mod:`xreg.analysis.translate`).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import re

import numpy as np

from xreg.analysis.runs import Comparison
from xreg import models, optimizers
from xreg.semantics import conventions
from xreg.report.table import _grid, _tolerance_line, explain, hazards, kernel_notes, rows, step_text, torch_equivalent


def _equivalents(c: Comparison) -> list[tuple[str, str]]:
    """(title, code) of the reference run's torch setting in every framework, or the reason there is none."""
    from xreg.analysis.translate import translate

    s = c.reference.spec
    if s.port != "exact" or s.group_decay or s.clip_norm is not None or s.schedule != "constant":
        return [("equivalents", "not printed for naive ports, group decay, clipping or schedules (see xreg translate)")]
    eq = torch_equivalent(c, c.reference)
    if eq.weight_decay is None:
        return [("equivalents", eq.note)]
    options = dict(s.options)
    decoupled = conventions.get(s.convention).enters == conventions.DIRECTION  # decay outside the gradient
    if decoupled and optimizers.get(s.optimizer).decoupled_flag:
        options["decoupled_weight_decay"] = True
    wd = s.lam if decoupled else eq.weight_decay
    try:
        t = translate(f"torch.{s.optimizer}", lr=s.lr, weight_decay=wd, options={k: v for k, v in options.items() if k != "decoupled_weight_decay" or v},
                      no_decay=s.no_decay, rows=c.data.n_train, batch_size=c.batch_sizes[0] if len(set(c.batch_sizes)) == 1 else None)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 (a report still says what it could not translate)
        return [("equivalents", f"no translation: {exc}")]
    sizes = sorted(set(c.batch_sizes))
    scratch = t.scratch if len(sizes) == 1 else (f"no single scratch lam: the scratch loop's lam/m changes with the batch "
                                                 f"size m in {sizes} (each batch needs its own)")  # fmt: skip
    sklearn = t.sklearn if models.get(s.model).convex else (f"no scikit-learn equivalent: the {s.model} is not a linear "
                                                             "model (LogisticRegression's C fits softmax and logistic regression)")  # fmt: skip
    out = [("torch", t.torch_code), ("optax (import optax, xreg.twins)", t.optax_code), ("scratch loop", scratch),
           ("L2 in a mean loss", t.l2_mean_loss), ("scikit-learn", sklearn)]  # fmt: skip
    out += [("no exact equivalent", x) for x in t.no_exact_equivalent]
    return out


def _spec_lines(c: Comparison) -> list[str]:
    s = c.spec
    d = c.data
    return [f"data: {d.name} ({d.n_train} train / {d.X_test.shape[0]} test rows, {d.n_features} features)",
            f"model: {c.architecture.model} [{c.architecture.describe()}]",
            f"optimizer: {s.optimizer} lr={s.lr:g} options={optimizers.shown(s.options)}",
            f"regularization: lam={s.lam:g}" + (f", no decay on {', '.join(s.no_decay)}" if s.no_decay else ""),
            f"training: {s.epochs} epochs, batches of {sorted(set(c.batch_sizes), reverse=True)} rows, {s.dtype}, seed {s.seed}",
            *([f"step: {step}"] if (step := step_text(s)) else [])]  # fmt: skip


def _notes(c: Comparison) -> list[str]:
    return ([f"{o.label}: {why}" for o in c.outcomes if (why := explain(c, o))] + kernel_notes(c)
            + [f"warning: {h}" for h in hazards(c)])  # fmt: skip


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def md_text(text: str) -> str:
    """Text from the user (a file's name) as inert Markdown: one line, HTML escaped, every Markdown mark
    backslash-escaped (no link, image, heading or table cell can be forged)."""
    one_line = " ".join(str(text).split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line, quote=True))


def markdown(c: Comparison, png: bytes) -> str:
    head, body = rows(c)
    name = md_text(c.data.name)
    lines = [f"# xreg comparison: {name}, {c.architecture.model} + {c.spec.optimizer}", ""]
    lines += [f"- {x.replace(c.data.name, name) if x.startswith('data: ') else x}" for x in _spec_lines(c)] + ["", "## Runs", ""]
    lines += [_grid(head, body, "markdown", 0)]
    lines += ["", _tolerance_line(c), "", "## Verdicts and causes", ""]
    lines += [f"- {n}" for n in _notes(c)] or ["- every run matches the reference"]
    lines += ["", "## Figure", "", f"![loss, accuracies and deviation](data:image/png;base64,{base64.b64encode(png).decode()})", ""]
    lines += ["## Equivalent settings", ""]
    for title, code in _equivalents(c):
        lines += [f"{title}:", "", "```python" if title.startswith(("torch", "optax")) else "```", code, "```", ""]
    return "\n".join(lines)


def html_document(c: Comparison, png: bytes) -> str:
    head, body = rows(c)
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             f"<title>xreg comparison: {e(c.data.name)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:left}"
             "pre{background:#f4f4f4;padding:8px;overflow-x:auto;white-space:pre-wrap}img{max-width:100%}</style>",
             "</head><body>", f"<h1>xreg comparison: {e(c.data.name)}, {e(c.architecture.model)} + {e(c.spec.optimizer)}</h1>",
             "<ul>" + "".join(f"<li>{e(x)}</li>" for x in _spec_lines(c)) + "</ul>", "<h2>Runs</h2><table>",
             "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]  # fmt: skip
    parts += ["<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in r) + "</tr>" for r in body]
    parts += ["</table>", f"<p>{e(_tolerance_line(c))}</p>", "<h2>Verdicts and causes</h2><ul>"]
    parts += [f"<li>{e(n)}</li>" for n in _notes(c)] or ["<li>every run matches the reference</li>"]
    parts += ["</ul><h2>Figure</h2>", f"<img alt='loss, accuracies and deviation' src='data:image/png;base64,{base64.b64encode(png).decode()}'>",
              "<h2>Equivalent settings</h2>"]  # fmt: skip
    for title, code in _equivalents(c):
        parts += [f"<h3>{e(title)}</h3>", f"<pre>{e(code)}</pre>"]
    parts += ["</body></html>", ""]
    return "\n".join(parts)


def report(c: Comparison, suffix: str) -> str:
    from xreg.report.plots import render

    png = render(c, "png")
    return html_document(c, png) if suffix in (".html", ".htm") else markdown(c, png)


def trajectories_csv(c: Comparison) -> str:
    """One row per kept step and run: run, step, the batch loss at those parameters (the next step's; empty
    after the last step), every parameter entry."""
    names = [(n, idx) for n, shape in c.architecture.shapes.items() for idx in np.ndindex(*shape)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["run", "step", "loss"] + [f"{n}[{','.join(map(str, idx))}]" for n, idx in names])
    for o in c.outcomes:
        t = o.trajectory
        if t is None:
            continue
        for j, step in enumerate(t.steps_at):
            loss = t.loss[j] if j < len(t.loss) else math.nan
            values = [t.params[n][(j, *idx)] for n, idx in names]
            w.writerow([o.label, int(step), "" if not math.isfinite(loss) else repr(float(loss))] + [repr(float(v)) for v in values])
    return buf.getvalue()
