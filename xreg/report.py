"""Turn a :class:`Comparison` into what a user keeps: a text table, a JSON document, a plot."""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from xreg import compare, conventions, optimizers
from xreg.runs import Comparison, RunOutcome

_NOT_SET = "-"


def update_formula(outcome: RunOutcome) -> str:
    """One line: how lam enters, then the optimizer step on the regularized gradient g."""
    spec = outcome.spec
    if spec.port == "naive":
        return "naive optax alias: " + outcome.trajectory.meta.get("chain", "") if outcome.trajectory else "naive"
    conv = conventions.CONVENTIONS[spec.convention].formula
    plain_sgd = spec.optimizer == "sgd" and spec.options["momentum"] == 0
    step = "w <- w - lr*g" if plain_sgd else f"w <- w - lr*{optimizers.get(spec.optimizer).torch_class}(g)"
    return f"{conv}; {step}"


def torch_equivalent(c: Comparison, outcome: RunOutcome) -> conventions.TorchEquivalent:
    s = outcome.spec
    return conventions.torch_weight_decay(
        s.convention,
        s.lam,
        c.batch_sizes,
        s.lr,
        optimizer=s.optimizer,
        momentum=float(s.options.get("momentum", 0.0)),
        decoupled_scale=s.decoupled_scale,
    )


def explain(c: Comparison, other: RunOutcome) -> str:
    """Why ``other`` differs from (or equals) the reference run, in one line."""
    ref = c.reference
    if other is ref or other.trajectory is None or ref.trajectory is None:
        return ""
    pair = c.pair(ref.label, other.label)
    if pair.note:
        return pair.note
    if other.spec.port == "naive":
        from xreg.backends import naive_ports

        cause = naive_ports.cause(other.spec)
        return cause or "the stock optax alias is exact here"
    if pair.verdict == "match":
        return ""
    eq_ref, eq_other = torch_equivalent(c, ref), torch_equivalent(c, other)
    if eq_other.weight_decay is None or eq_ref.weight_decay is None:
        return eq_other.note
    s = other.spec
    fix = conventions.lam_for_torch_weight_decay(s.convention, eq_ref.weight_decay, c.batch_sizes, s.lr, s.decoupled_scale)
    same_rule = s.optimizer == ref.spec.optimizer and s.options == ref.spec.options
    hint = f"; {s.convention} lam={fix:.6g} reproduces the reference" if fix is not None and same_rule else ""
    return f"{eq_other.note}, the reference uses weight_decay={eq_ref.weight_decay:.4g}{hint}"


def hazards(c: Comparison) -> list[str]:
    """Warnings about the setup itself, independent of any backend (one line per distinct problem)."""
    by_factor: dict[float, list[str]] = {}
    for o in c.outcomes:
        s = o.spec
        f = conventions.decay_factor(s.convention, s.lam, s.lr, min(c.batch_sizes), s.optimizer, s.decoupled_scale)
        if f is not None and f <= 0:
            by_factor.setdefault(f, []).append(o.label)
    return [
        f"the decay factor 1 - lr*lam = {f:.4g} <= 0 flips the sign of w every step "
        f"(expect oscillation or divergence) in {', '.join(labels)}"
        for f, labels in by_factor.items()
    ]


def _fmt(x: float | None, spec: str = ".3e") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return _NOT_SET
    return format(x, spec)


def table(c: Comparison) -> str:
    """The comparison as an aligned text table plus one line per explained difference."""
    ref = c.reference
    head = ["run", "convention", "update", "final loss", "train acc", "test acc", "max |dw| vs ref",
            "verdict", "torch wd equiv"]  # fmt: skip
    rows = []
    notes = []
    for o in c.outcomes:
        t = o.trajectory
        if t is None:
            rows.append([o.label, o.spec.convention, update_formula(o), _NOT_SET, _NOT_SET, _NOT_SET, _NOT_SET,
                         o.status, _NOT_SET])  # fmt: skip
            continue
        if o is ref:
            dev, verdict = "(reference)", o.status if o.status != "ok" else "reference"
        elif ref.trajectory is None:
            dev, verdict = _NOT_SET, o.status
        else:
            p = c.pair(ref.label, o.label)
            dev = _fmt(p.max_abs_diff)
            verdict = p.verdict if p.first_divergence_step is None else f"{p.verdict} from step {p.first_divergence_step}"
        eq = torch_equivalent(c, o) if o.spec.port == "exact" else None
        final_loss = t.train_loss[-1] if t.diverged_at is None else math.nan
        rows.append([o.label, o.spec.convention, update_formula(o), _fmt(final_loss, ".6f"),
                     _fmt(t.train_accuracy[-1], ".4f"), _fmt(t.test_accuracy[-1], ".4f"), dev, verdict,
                     _fmt(eq.weight_decay, ".4g") if eq else _NOT_SET])  # fmt: skip
        why = explain(c, o)
        if why:
            notes.append(f"  {o.label}: {why}")
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(head), line(["-" * w for w in widths])] + [line(r) for r in rows]
    tol = _tolerance_line(c)
    out += ["", tol]
    out += [f"warning: {h}" for h in hazards(c)]
    if notes:
        out += ["why runs differ from the reference:"] + notes
    return "\n".join(out)


def _tolerance_line(c: Comparison) -> str:
    e = compare.eps(c.spec.dtype)
    ref = c.reference.label
    finals = [p.final_tolerance for p in c.pairs if ref in (p.a, p.b)]
    at_end = f"; {max(finals):.3g} at the last step against the reference" if finals else ""
    return (
        f"match tolerance: |dw_k| <= {compare.TOLERANCE_FACTOR:g} * eps * sum_j<=k (|w_j| + |w_j - w_j-1|)  "
        f"({c.spec.dtype} eps = {e:.3g}{at_end})"
    )


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("xreg", "numpy", "jax", "jaxlib", "optax", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _clean(x: Any) -> Any:
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def to_json(c: Comparison) -> dict[str, Any]:
    runs = []
    for o in c.outcomes:
        t = o.trajectory
        entry: dict[str, Any] = {
            "label": o.label,
            "backend": o.request.backend,
            "convention": o.spec.convention,
            "port": o.spec.port,
            "lam": o.spec.lam,
            "status": o.status,
            "update": update_formula(o),
        }
        if t is not None:
            eq = torch_equivalent(c, o)
            entry.update(
                diverged_at=t.diverged_at,
                equivalent_torch_weight_decay=eq.weight_decay if o.spec.port == "exact" else None,
                equivalence=eq.note if o.spec.port == "exact" else None,
                explanation=explain(c, o),
                final_params={"weight": t.weight[-1], "bias": t.bias[-1]},
                loss=t.loss,
                penalty=t.penalty,
                train_loss=t.train_loss,
                train_accuracy=t.train_accuracy,
                test_accuracy=t.test_accuracy,
                meta=dict(t.meta),
            )
        runs.append(entry)
    pairs = [
        {
            "a": p.a,
            "b": p.b,
            "max_abs_diff": p.max_abs_diff,
            "max_rel_diff": p.max_rel_diff,
            "first_divergence_step": p.first_divergence_step,
            "final_tolerance": p.final_tolerance,
            "verdict": p.verdict,
            "note": p.note,
        }
        for p in c.pairs
    ]
    d = c.data
    return _clean(
        {
            "xreg_json": 1,
            "spec": c.spec.to_json(),
            "data": {
                "name": d.name,
                "target": d.target,
                "features": list(d.feature_names),
                "n_train": d.n_train,
                "n_test": int(d.X_test.shape[0]),
                "batch_sizes": list(c.batch_sizes),
            },
            "tolerance": {
                "formula": "C * eps(dtype) * sum_{j<=k} (max|w_j| + max|w_j - w_{j-1}|)",
                "C": compare.TOLERANCE_FACTOR,
                "eps": compare.eps(c.spec.dtype),
            },
            "environment": versions(),
            "reference": c.reference.label,
            "warnings": hazards(c),
            "all_match": c.all_match,
            "runs": runs,
            "pairs": pairs,
        }
    )


def check_writable(path: str | Path, *, force: bool = False) -> None:
    """Refuse to clobber an existing file without ``force``, or to write into a missing folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder; give a file path.")
    if path.exists() and not force:
        raise FileExistsError(f"'{path}' exists; pass --force to overwrite it.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder of '{path}' does not exist.")


def write_atomic(path: str | Path, content: str | bytes, *, force: bool = False) -> None:
    """Write ``content`` to ``path`` through a temporary file and a rename; refuse to clobber without force."""
    check_writable(path, force=force)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes it 0600; give the file a normal mode
        data = content.encode("utf-8") if isinstance(content, str) else content
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def dumps(c: Comparison) -> str:
    return json.dumps(to_json(c), indent=1, allow_nan=False) + "\n"
