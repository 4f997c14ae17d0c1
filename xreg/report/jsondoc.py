"""A :class:`Comparison` as a JSON document a user keeps: the spec, library versions, every run
(parameters as named trees in torch's shapes) and every pair."""

from __future__ import annotations

import json
import math
import platform
from importlib import metadata
from typing import Any

import numpy as np

from xreg import schedules
from xreg.analysis import agreement
from xreg.analysis.runs import Comparison
from xreg.core import recipe
from xreg.core.structure import structure
from xreg.report.table import explain, hazards, kernel_notes, torch_equivalent, update_formula


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    for pkg in ("xreg", "numpy", "jax", "jaxlib", "optax", "torch", "scikit-learn"):
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


def _run_entry(c: Comparison, o, params: bool) -> dict[str, Any]:
    """One run: its label and rule, its status and, where it ran, its trajectory's numbers."""
    t = o.trajectory
    entry: dict[str, Any] = {
        "label": o.label,
        "backend": o.request.backend,
        "convention": o.spec.convention,
        "port": o.spec.port,
        "lam": o.spec.lam if not o.skipped else o.request.lam,
        "status": o.status,
        "update": update_formula(o),
        "recipe": recipe.text(recipe.build(structure(o.spec, c.architecture, c.data.n_train))),
    }
    if o.skipped:
        entry["explanation"] = explain(c, o)
    if t is not None:
        eq = torch_equivalent(c, o)
        exact = o.spec.port == "exact"
        entry.update(diverged_at=t.diverged_at, equivalent_torch_weight_decay=eq.weight_decay if exact else None,
                     equivalence=eq.note if exact else None, explanation=explain(c, o), final_params=t.final_params,
                     recorded_steps=t.steps_at, loss=t.loss, penalty=t.penalty, train_loss=t.train_loss,
                     train_accuracy=t.train_accuracy, test_accuracy=t.test_accuracy, meta=dict(t.meta))  # fmt: skip
        if t.buffers:  # batch norm's running statistics, compared like the parameters
            entry["final_buffers"] = {n: b[-1] for n, b in t.buffers.items()}
        if params:
            entry["params"] = {n: p for n, p in t.params.items()}
            if t.buffers:
                entry["buffers"] = dict(t.buffers)
    return entry


def _schedule(c: Comparison) -> dict[str, Any]:
    """The run's lr scheduler as torch is called: the spec's options with the run's values in place of the markers
    (T_max or total_steps = the run's calls, max_lr = --lr), so the file says the number torch was given."""
    s = structure(c.spec, c.architecture, c.data.n_train)
    o = dict(s.schedule_options)
    shown = {k: v for k, v in o.items() if k != "schedulers"}
    if "schedulers" in o:
        shown["schedulers"] = [schedules.text(m, dict(mo)) for m, mo in o["schedulers"]]
    return {"name": s.schedule, "every": s.schedule_every, "calls": s.calls, "options": shown, "torch": schedules.text(s.schedule, o)}


def _pair_entry(p) -> dict[str, Any]:
    return {"a": p.a, "b": p.b, "max_abs_diff": p.max_abs_diff, "max_rel_diff": p.max_rel_diff,
            "first_divergence_step": p.first_divergence_step, "final_tolerance": p.final_tolerance, "verdict": p.verdict,
            "note": p.note, "same_rule": p.same_rule, "round_off_floor": p.floor.to_json() if p.floor is not None else None}  # fmt: skip


def to_json(c: Comparison, params: bool = False) -> dict[str, Any]:
    """The document; ``params``: every kept step's parameters too (``params`` per run: name -> (rows, *shape)),
    so the figures can be rebuilt from the file."""
    runs = [_run_entry(c, o, params) for o in c.outcomes]
    pairs = [_pair_entry(p) for p in c.pairs]
    d = c.data
    return _clean(
        {
            "xreg_json": 1,
            "spec": c.spec.to_json(),
            "schedule": _schedule(c),
            "model": {"name": c.architecture.model, "parameters": {n: list(s) for n, s in c.architecture.shapes.items()},
                      "buffers": {n: list(s) for n, s in c.architecture.buffer_shapes.items()},
                      "layers": c.architecture.describe(), "head": c.architecture.head},
            "data": {
                "name": d.name,
                "target": d.target,
                "features": list(d.feature_names),
                "n_train": d.n_train,
                "n_test": int(d.X_test.shape[0]),
                "n_features": d.n_features,
                "batch_sizes": list(c.batch_sizes),
            },
            "tolerance": {
                "formula": "C * eps(dtype) * sum_{j<=k} (max|w_j| + max|w_j - w_{j-1}|)",
                "C": agreement.TOLERANCE_FACTOR,
                "eps": agreement.eps(c.spec.dtype),
            },
            "environment": versions(),
            "reference": c.reference.label,
            "warnings": hazards(c),
            "kernels": kernel_notes(c),
            "all_match": c.all_match,
            "rules_match": c.rules_match,
            "runs": runs,
            "pairs": pairs,
        }
    )


def dumps(c: Comparison) -> str:
    return json.dumps(to_json(c), indent=1, allow_nan=False) + "\n"
