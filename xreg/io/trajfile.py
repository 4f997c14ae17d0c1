"""The trajectory file: a run of the user's own code, as a ``.npz`` any framework can write.

Keys (``T`` = steps recorded):

* ``params/<name>``: (T+1, *shape), row 0 the initial parameters, row k the parameters after step k;
* ``grads/<name>`` (optional): (T, *shape), the gradient of the loss alone (no decay) that step k+1 used;
* ``lr`` (optional): (T,), the learning rate step k+1 used;
* ``loss`` (optional): (T,), the loss at step k+1 (at the parameters before it);
* ``meta`` (optional): a JSON object as a string: ``framework``, ``optimizer``, free text.

Names are the framework's own: torch's ``named_parameters()``, or the path of a JAX/NumPy pytree joined
with ``.`` (``{"dense": {"kernel": ...}}`` -> ``dense.kernel``; list items by position). Every array is
stored as float64. Nothing here imports a framework.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from xreg.core.checks import XregInputError
from xreg.core.plan import read_npz
from xreg.io.files import write_atomic

SERIES = ("lr", "loss")


@dataclass(frozen=True, eq=False)
class RecordedRun:
    """What a trajectory file holds (see the module docstring for the shapes)."""

    params: Mapping[str, np.ndarray]
    grads: Mapping[str, np.ndarray] | None = None
    lr: np.ndarray | None = None
    loss: np.ndarray | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(next(iter(self.params.values())).shape[0]) - 1

    def at(self, step: int) -> dict[str, np.ndarray]:
        """The parameters after ``step`` steps (0 = initial)."""
        return {n: p[step] for n, p in self.params.items()}


def check(run: RecordedRun, source: str = "the run") -> RecordedRun:
    """Every inconsistency in one error: no parameters, rows that disagree, non-numeric arrays."""
    problems = []
    if not run.params:
        problems.append("no 'params/<name>' arrays")
    rows = {n: np.shape(p)[0] if np.ndim(p) else None for n, p in run.params.items()}
    if run.params and len(set(rows.values())) != 1:
        problems.append("the params arrays have different numbers of rows: " + ", ".join(f"{n} {r}" for n, r in rows.items()))
    if run.params and min((r or 0) for r in rows.values()) < 1:
        problems.append("a params array has no rows (row 0 is the initial value)")
    steps = next(iter(rows.values()), 1) - 1 if run.params and len(set(rows.values())) == 1 else None
    if run.grads is not None and steps is not None:
        for n, g in run.grads.items():
            if n not in run.params:
                problems.append(f"grads/{n} has no params/{n}")
            elif np.shape(g) != (steps, *np.shape(run.params[n])[1:]):
                problems.append(f"grads/{n} has shape {np.shape(g)}, not {(steps, *np.shape(run.params[n])[1:])}")
    for key in SERIES:
        v = getattr(run, key)
        if v is not None and steps is not None and np.shape(v) != (steps,):
            problems.append(f"{key} has shape {np.shape(v)}, not ({steps},)")
    arrays = [*run.params.values(), *(run.grads or {}).values(), *(getattr(run, k) for k in SERIES if getattr(run, k) is not None)]
    if any(not np.issubdtype(np.asarray(a).dtype, np.number) for a in arrays):
        problems.append("an array is not numeric")
    if problems:
        raise XregInputError(f"{source} is not a trajectory: " + "; ".join(problems) + ".")
    return run


def to_bytes(run: RecordedRun) -> bytes:
    check(run)
    arrays = {f"params/{n}": np.asarray(p, np.float64) for n, p in run.params.items()}
    arrays.update({f"grads/{n}": np.asarray(g, np.float64) for n, g in (run.grads or {}).items()})
    arrays.update({k: np.asarray(getattr(run, k), np.float64) for k in SERIES if getattr(run, k) is not None})
    arrays["meta"] = np.asarray(json.dumps(dict(run.meta), sort_keys=True))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save(path: str | Path, run: RecordedRun, *, force: bool = False) -> None:
    """Write ``run`` to ``path`` (atomically; an existing file only with ``force``)."""
    write_atomic(path, to_bytes(run), force=force)


def load(path: str | Path) -> RecordedRun:
    """Read a trajectory file, checked: one ``XregInputError`` naming every problem."""
    arrays = read_npz(path, "trajectory")
    unknown = [k for k in arrays if not k.startswith(("params/", "grads/")) and k not in (*SERIES, "meta")]
    if unknown:
        raise XregInputError(f"'{path}' holds arrays a trajectory file does not have: {', '.join(sorted(unknown))}.")
    meta: dict[str, Any] = {}
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"]))
        except json.JSONDecodeError as exc:
            raise XregInputError(f"'{path}': meta is not a JSON string ({exc}).") from None
        if not isinstance(meta, dict):
            raise XregInputError(f"'{path}': meta must be a JSON object.")
    params = {k[len("params/"):]: v for k, v in arrays.items() if k.startswith("params/")}
    grads = {k[len("grads/"):]: v for k, v in arrays.items() if k.startswith("grads/")} or None
    run = RecordedRun(params, grads, arrays.get("lr"), arrays.get("loss"), meta)
    return check(run, f"'{path}'")
