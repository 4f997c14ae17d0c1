"""Sweeps: one experiment over a grid of numeric hyperparameters, the whole grid in JAX (one vmapped,
jitted computation per structure, sharded over the devices) and a sample of grid points re-run in the
other backends, so that a sweep is as trustworthy as a single run.

An axis is ``NAME=START:STOP:COUNT`` (linear) or ``NAME=log:START:STOP:COUNT`` (log-spaced, both ends
included); several axes form a grid in C order (the last axis varies fastest). ``NAME`` is ``lr``,
``lam``, ``clip_norm``, any numeric option of the optimizer by its torch name (``momentum``, ``eps``,
``alpha``, ``weight_decay`` is not one: that is ``lam``), or ``beta1``/``beta2`` for the two entries of
``betas``.

Agreement at a verified point: the other backend's full run gives the final parameters and, from its
own trajectory, the tolerance of :mod:`xreg.analysis.agreement` at the last step; the JAX grid's final
parameters at that point must lie within it.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from xreg import backends
from xreg.analysis import floors, triage
from xreg.analysis.agreement import tolerance
from xreg.analysis.runs import check
from xreg.core.checks import INTEGER, XregInputError, is_number
from xreg.core.progress import interruptible
from xreg.core.spec import Dataset, ExperimentSpec
from xreg import optimizers

MAX_POINTS = 1_000_000
BETAS = {"beta1": 0, "beta2": 1}


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[float, ...]
    log: bool = False

    @property
    def text(self) -> str:
        return f"{self.name} ({'log' if self.log else 'linear'}, {len(self.values)} values {self.values[0]:.4g}..{self.values[-1]:.4g})"


def parse_axis(text: str) -> Axis:
    """``NAME=START:STOP:COUNT`` or ``NAME=log:START:STOP:COUNT``."""
    form = "--sweep takes NAME=START:STOP:COUNT or NAME=log:START:STOP:COUNT"
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise XregInputError(f"{form}; got {text!r}.")
    parts = rest.split(":")
    log = parts[0].strip() == "log"
    if log:
        parts = parts[1:]
    if len(parts) != 3:
        raise XregInputError(f"{form}; got {text!r}.")
    # the flags' own number rules (ASCII digits: float() and int() take '1_0' and '١')
    if not (is_number(parts[0]) and is_number(parts[1]) and INTEGER.fullmatch(parts[2].strip())):
        raise XregInputError(f"{form} (numbers in ASCII digits, COUNT an integer); got {text!r}.")
    start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
    if not (math.isfinite(start) and math.isfinite(stop)):
        raise XregInputError(f"--sweep {name}: START and STOP must be finite numbers; got {text!r}.")
    if count < 1:
        raise XregInputError(f"--sweep {name}: COUNT must be at least 1; got {count}.")
    if count > MAX_POINTS:  # before any array of that length is made
        raise XregInputError(f"--sweep {name}: COUNT {count:.3g} is more than the {MAX_POINTS:.0e} points of a grid.")
    if log and (start <= 0 or stop <= 0):
        raise XregInputError(f"--sweep {name}: a log-spaced axis needs START and STOP > 0; got {start:g} and {stop:g}.")
    values = np.geomspace(start, stop, count) if log else np.linspace(start, stop, count)
    return Axis(name, tuple(float(v) for v in values), log)


def sweepable(spec: ExperimentSpec) -> list[str]:
    """The names an axis may take for this spec's optimizer."""
    opt = optimizers.get(spec.optimizer)
    names = ["lr", "lam", "clip_norm"]
    for key, value in opt.defaults.items():
        if key == "betas":
            names += list(BETAS)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            names.append(key)
    return names


def check_axes(spec: ExperimentSpec, axes: Sequence[Axis]) -> None:
    if not axes:
        raise XregInputError("A sweep needs at least one --sweep NAME=START:STOP:COUNT.")
    allowed = sweepable(spec)
    seen = set()
    for ax in axes:
        if ax.name not in allowed:
            raise XregInputError(
                f"--sweep {ax.name}: not a numeric hyperparameter of {spec.optimizer}; one of: {', '.join(allowed)}."
            )
        if ax.name in seen:
            raise XregInputError(f"--sweep {ax.name} is given twice.")
        seen.add(ax.name)
        if ax.name == "clip_norm" and spec.clip_norm is None:
            raise XregInputError("--sweep clip_norm needs --clip-norm (clipping is part of the compiled structure).")
    size = math.prod(len(ax.values) for ax in axes)
    if size > MAX_POINTS:
        raise XregInputError(f"The grid has {size:.3g} points, more than {MAX_POINTS:.0e}; use fewer values.")


def spec_at(base: ExperimentSpec, point: dict[str, float]) -> ExperimentSpec:
    """The spec of one grid point: ``base`` with the point's values."""
    changes: dict[str, Any] = {}
    options = dict(base.options)
    for name, v in point.items():
        if name in ("lr", "lam", "clip_norm"):
            changes[name] = v
        elif name in BETAS:
            betas = list(options.get("betas", optimizers.get(base.optimizer).defaults["betas"]))
            betas[BETAS[name]] = v
            options["betas"] = tuple(betas)
        else:
            options[name] = v
    return base.replace(options=options, **changes)


def grid_points(axes: Sequence[Axis]) -> list[dict[str, float]]:
    return [dict(zip((a.name for a in axes), vals)) for vals in itertools.product(*(a.values for a in axes))]


def verify_indices(shape: tuple[int, ...], k: int | None) -> list[tuple[int, ...]]:
    """Grid indices re-run in the other backends: by default the centre and the corners; ``k`` points:
    those first (the centre first of all), then points spread evenly over the flattened grid, up to ``k``
    distinct ones."""
    corners = list(dict.fromkeys(itertools.product(*[sorted({0, n - 1}) for n in shape])))
    centre = tuple((n - 1) // 2 for n in shape)
    chosen = list(dict.fromkeys([centre] + corners))
    if k is None:
        return chosen
    size = math.prod(shape)
    for flat in np.linspace(0, size - 1, min(k, size)).round().astype(int):
        if len(chosen) >= k:
            break
        idx = tuple(int(i) for i in np.unravel_index(flat, shape))
        if idx not in chosen:
            chosen.append(idx)
    extra = (tuple(int(i) for i in np.unravel_index(f, shape)) for f in range(size))
    while len(chosen) < min(k, size):
        idx = next(extra)
        if idx not in chosen:
            chosen.append(idx)
    return chosen[:k]


@dataclass(frozen=True, eq=False)
class Verified:
    index: tuple[int, ...]
    point: dict[str, float]
    backend: str
    final_loss: float
    grid_final_loss: float
    max_param_gap: float
    tolerance: float
    verdict: str  # match | round-off (chaotic) | round-off (bfloat16 kernel) | mismatch | failed
    note: str = ""

    @property
    def agrees(self) -> bool:
        """The point agrees with the grid: within the tolerance, or within the round-off floor (as compare)."""
        return self.verdict == "match" or self.verdict in triage.ROUND_OFFS


@dataclass(frozen=True, eq=False)
class SweepResult:
    spec: ExperimentSpec
    data: Dataset
    axes: tuple[Axis, ...]
    grid: dict[str, Any]  # the JAX backend's arrays, each reshaped to the grid's shape
    verified: list[Verified]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a.values) for a in self.axes)

    @property
    def all_agree(self) -> bool:
        return all(v.agrees for v in self.verified)

    def point(self, index: tuple[int, ...]) -> dict[str, float]:
        return {a.name: a.values[i] for a, i in zip(self.axes, index)}

    def ranking(self, key: str) -> list[tuple[int, ...]]:
        """Grid indices best first: lowest ``final_loss``, or highest ``train_accuracy``/``test_accuracy``
        (ties broken by the loss); points whose value is not finite last."""
        loss = self.grid["final_loss"].ravel()
        primary = -self.grid[key].ravel() if key != "final_loss" else loss
        primary = np.where(np.isfinite(primary) & np.isfinite(loss), primary, np.inf)  # a diverged point ranks last
        order = np.lexsort((np.where(np.isfinite(loss), loss, np.inf), primary))
        return [tuple(int(i) for i in np.unravel_index(f, self.shape)) for f in order]


def run_sweep(
    base: ExperimentSpec,
    data: Dataset,
    axes: Sequence[Axis],
    verify: int | None = None,
    verify_backends: Sequence[str] = ("torch", "numpy"),
    progress: Callable[[str, int, int], None] | None = None,
) -> SweepResult:
    """The whole grid in the JAX backend, then ``verify`` points (default: corners and centre) in each of
    ``verify_backends``, judged against the grid. ``progress(what, done, total)`` is called as work ends."""
    check_axes(base, axes)
    check(base, data)
    points = grid_points(axes)
    specs = [spec_at(base, p) for p in points]
    shape = tuple(len(a.values) for a in axes)
    picks = verify_indices(shape, verify) if verify != 0 else []
    for idx in picks:  # the sampled points' own input errors (e.g. a negative eps) before any training
        check(specs[int(np.ravel_multi_index(idx, shape))], data)
    for name in ("jax", *verify_backends):
        backends.check_device(name, base)
    total = 1 + len(picks) * len(verify_backends)
    note = progress or (lambda *a: None)
    note("grid (jax)", 0, total)
    t0 = time.perf_counter()
    jax_backend = backends.load("jax")
    out = interruptible(lambda: jax_backend.sweep(specs, data, base.device))  # Ctrl-C and SIGTERM within a second
    seconds = {"grid": time.perf_counter() - t0}
    grid = {k: np.asarray(out[k]).reshape(shape) for k in ("final_loss", "train_accuracy", "test_accuracy")}
    grid["final_params"] = {n: a.reshape(shape + a.shape[1:]) for n, a in out["final_params"].items()}
    grid["final_buffers"] = {n: a.reshape(shape + a.shape[1:]) for n, a in out.get("final_buffers", {}).items()}
    grid["devices"] = out["devices"]
    grid["structures"] = out["structures"]
    grid["compilations"] = out["compilations"]
    done = 1
    note("grid (jax)", done, total)
    verified = []
    t0 = time.perf_counter()
    for idx in picks:
        flat = int(np.ravel_multi_index(idx, shape))
        for name in verify_backends:
            verified.append(_verify(name, specs[flat], data, idx, points[flat], grid))
            done += 1
            note(f"verify ({name})", done, total)
    seconds["verify"] = time.perf_counter() - t0
    return SweepResult(base, data, tuple(axes), grid, verified, seconds)


def _verify(name: str, spec: ExperimentSpec, data: Dataset, idx, point, grid) -> Verified:
    grid_loss = float(grid["final_loss"][idx])
    try:
        traj = backends.train(name, spec, data)
    except Exception as exc:  # one backend's failure must not lose the sweep
        return Verified(idx, point, name, float("nan"), grid_loss, float("nan"), float("nan"), "failed",
                        f"{type(exc).__name__}: {exc}")  # fmt: skip
    theirs = traj.flat
    kept = {**grid["final_params"], **grid.get("final_buffers", {})}  # the flat order: parameters, then buffers
    mine = np.concatenate([np.asarray(kept[n][idx]).reshape(-1) for n in (*traj.params, *traj.buffers)])
    gap = float(np.max(np.abs(theirs[-1] - mine))) if mine.size else 0.0
    tol = float(tolerance(spec.dtype, theirs, theirs, traj.steps_at)[-1])
    both_nan = not np.all(np.isfinite(theirs[-1])) and not np.all(np.isfinite(mine))
    ok = both_nan or (np.isfinite(gap) and gap <= tol)
    note = "both runs diverged" if both_nan else ""
    verdict = "match" if ok else "mismatch"
    if not ok and np.isfinite(gap):  # the same rule in two backends: judged against the round-off floor, as compare judges it
        probe = triage.kernel_probe(spec) if name == "torch" else None
        kernel = probe is not None and not probe.exact  # torch's bfloat16 kernel against the grid's emulation (Muon)
        floor = floors.measure(traj, data, name, perturbations=("ns_kernel",) if kernel else floors.CHAOTIC)
        if triage.within_floor(gap, floor, tol, row=-1):  # the final step: the grid keeps no other
            verdict = triage.ROUND_OFF_KERNEL if kernel else triage.ROUND_OFF
            note = f"within the {'kernel' if kernel else 'round-off'} floor: {floor.describe()}"
    return Verified(idx, point, name, float(traj.train_loss[-1]) if traj.train_loss.size else float("nan"),
                    grid_loss, gap, tol, verdict, note)  # fmt: skip
