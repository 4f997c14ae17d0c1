"""Why do two recorded runs differ? (``xreg diagnose A.npz B.npz``)

1. **Align** the runs by parameter name: ``--map a=b`` first, then equal names, then, for what is left,
   the one parameter of the other run with the same initial value (as is, or transposed: a flax kernel
   (in, out) against a torch weight (out, in)), or else the only one with a fitting shape.
2. **First divergence**: the first step whose largest parameter gap exceeds xreg's tolerance
   (:func:`xreg.analysis.agreement.tolerance`).
3. **Stage**: ``gradient`` when, at a step whose parameters still agree to round-off, the recorded
   gradients differ (the loss or the forward pass differs); ``update`` otherwise.
4. **Cause**: a run's rule is known from its meta (:class:`xreg.record.TorchRecorder` writes the
   optimizer and its param groups; anyone can write the same keys), or fitted as plain SGD with a
   per-parameter ``g + c*w``. Every cause of :mod:`xreg.semantics.causes` is a change of that *base*
   rule (with at most one number fitted, e.g. the factor between two decay coefficients); each change
   is re-simulated on the *other* run, one step at a time from that run's own recorded state and
   gradients (the optimizer's buffers carried along), in NumPy with torch's update equations
   (each optimizer module's NumPy reference, :mod:`xreg.optimizers`). The cause is the first, in the table's order, whose every step
   lands within the one-step round-off ``16*eps*(|w| + |dw|)``; the rest are ranked by their worst step.
   The unchanged base rule reproducing the other run means the gap is round-off grown by the dynamics.

Nothing is claimed that was not re-simulated; with no reproducing cause the verdict is ``unexplained``,
with the closest candidate as evidence.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from xreg.analysis.agreement import TOLERANCE_FACTOR, eps, first_past, tolerance
from xreg.core.checks import XregInputError
from xreg.io.trajfile import RecordedRun
from xreg import optimizers
from xreg.optimizers import sgd
from xreg.optimizers.base import OptionCause
from xreg.semantics import causes

MAX_FIT_STEPS = 200  # a fitted number is fitted on at most this many steps, then checked on all
PRECISIONS = ("float16", "bfloat16", "float32", "float64")


# ---- alignment -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alignment:
    names: tuple[str, ...]  # A's names, in A's order
    b_name: Mapping[str, str]  # A's name -> B's
    perm: Mapping[str, tuple[int, ...]]  # A's name -> the axes of B's array (after the step) in A's order
    how: Mapping[str, str]  # A's name -> 'name', 'map', 'initial value' or 'shape'

    @property
    def transposed(self) -> frozenset[str]:
        return frozenset(n for n, p in self.perm.items() if p != tuple(range(len(p))))

    def lines(self) -> list[str]:
        out = []
        for n in self.names:
            p = self.perm[n]
            if self.b_name[n] != n or n in self.transposed:
                t = "" if n not in self.transposed else ", transposed" if p == (1, 0) else f", axes {p}"
                out.append(f"{n} <-> {self.b_name[n]} (by {self.how[n]}{t})")
        return out


MAX_PERMUTED_RANK = 6  # every axis order of a tensor up to this rank is tried (720); above it, as is and reversed


def _orders(sa: tuple[int, ...], sb: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The orders of B's axes that give A's shape: as is first, then reversed, then the others."""
    if len(sa) != len(sb) or sorted(sa) != sorted(sb):
        return []
    r = len(sa)
    ident, rev = tuple(range(r)), tuple(reversed(range(r)))
    pool = itertools.permutations(range(r)) if r <= MAX_PERMUTED_RANK else iter((ident, rev))
    fitting = [p for p in pool if tuple(sb[i] for i in p) == sa]
    return sorted(set(fitting), key=lambda p: (p != ident, p != rev, p))


def _permute(x: np.ndarray, p: tuple[int, ...]) -> np.ndarray:  # B's array (step first) in A's axis order
    return np.transpose(x, (0,) + tuple(i + 1 for i in p)) if p != tuple(range(len(p))) else x


def align(a: RecordedRun, b: RecordedRun, mapping: Mapping[str, str] | None = None) -> Alignment:
    """Pair A's parameters with B's: by --map, by name, then by initial value, then by shape; B's array may
    be A's with its axes in any order (a transposed dense kernel, an HWIO conv kernel against OIHW)."""
    mapping = dict(mapping or {})
    bad = [f"'{k}' (not in A)" for k in mapping if k not in a.params] + [f"'{v}' (not in B)" for v in mapping.values() if v not in b.params]
    if bad:
        raise XregInputError(f"--map names parameters the runs do not have: {', '.join(bad)}; A has {sorted(a.params)}, B has {sorted(b.params)}.")
    pairs: dict[str, str] = dict(mapping)
    how = {n: "map" for n in mapping}
    for n in a.params:
        if n not in pairs and n in b.params and n not in pairs.values():
            pairs[n], how[n] = n, "name"
    perm: dict[str, tuple[int, ...]] = {}

    def fits(na: str, nb: str) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
        """The axis orders of B's array that give A's shape, and those that also give A's start."""
        orders = _orders(a.params[na].shape[1:], b.params[nb].shape[1:])
        a0, b0 = a.params[na][0], b.params[nb][0]
        return orders, [p for p in orders if np.array_equal(a0, np.transpose(b0, p))]

    for n, nb in pairs.items():  # named pairs: the layout is recognised by shape, and by start where it tells
        orders, starts = fits(n, nb)
        if not orders:
            raise XregInputError(f"A's '{n}' {a.params[n].shape[1:]} and B's '{nb}' {b.params[nb].shape[1:]} have different "
                                 "shapes, in any order of their axes.")  # fmt: skip
        perm[n] = (starts or orders)[0]
    for rule in ("initial value", "shape"):
        changed = True
        while changed:
            changed = False
            free_b = [nb for nb in b.params if nb not in pairs.values()]
            for n in [n for n in a.params if n not in pairs]:
                options = []
                for nb in free_b:
                    orders, starts = fits(n, nb)
                    chosen = starts if rule == "initial value" else orders
                    if chosen:
                        options.append((nb, chosen[0]))
                if len(options) == 1:
                    (nb, p), = options
                    pairs[n], how[n], perm[n] = nb, rule, p
                    changed = True
                    break
    left_a = [n for n in a.params if n not in pairs]
    left_b = [nb for nb in b.params if nb not in pairs.values()]
    if left_a or left_b:
        raise XregInputError(
            "Cannot align the runs' parameters: " + "; ".join(
                ([f"A's {', '.join(left_a)} unmatched"] if left_a else []) + ([f"B's {', '.join(left_b)} unmatched"] if left_b else []))
            + ". Name the pairs with --map A_NAME=B_NAME.")  # fmt: skip
    names = tuple(a.params)
    return Alignment(names, {n: pairs[n] for n in names}, {n: perm[n] for n in names}, how)


# ---- a run as flat arrays in A's layout -----------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Flat:
    label: str
    P: np.ndarray  # (T+1, p)
    G: np.ndarray | None  # (T, p)
    lr: np.ndarray | None  # (T,)
    meta: Mapping[str, Any]
    slices: Mapping[str, slice]  # A's names
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # A's names, in A's axis order

    @property
    def steps(self) -> int:
        return self.P.shape[0] - 1

    def vector(self, per_name: Mapping[str, float]) -> np.ndarray:
        out = np.zeros(self.P.shape[1])
        for n, v in per_name.items():
            out[self.slices[n]] = v
        return out


def flat(run: RecordedRun, al: Alignment, side: str, label: str) -> Flat:
    names = al.names
    get = (lambda arr, n: arr[n]) if side == "a" else (lambda arr, n: _permute(arr[al.b_name[n]], al.perm[n]))
    rows = run.steps + 1
    arrays = {n: get(run.params, n) for n in names}
    P = np.concatenate([arrays[n].reshape(rows, -1) for n in names], axis=1)
    G = None
    if run.grads is not None and all((al.b_name[n] if side == "b" else n) in run.grads for n in names):
        G = np.concatenate([get(run.grads, n).reshape(rows - 1, -1) for n in names], axis=1)
    slices, start = {}, 0
    for n in names:
        size = int(np.prod(run.params[n if side == "a" else al.b_name[n]].shape[1:], dtype=int))
        slices[n] = slice(start, start + size)
        start += size
    shapes = {n: tuple(arrays[n].shape[1:]) for n in names}
    return Flat(label, P, G, None if run.lr is None else np.asarray(run.lr, float), dict(run.meta), slices, shapes)


def precision(run: Flat) -> str:
    """The precision the run computed in: its meta's ``dtype``, else float32 where every recorded value is one."""
    dt = str(run.meta.get("dtype", ""))
    if dt in PRECISIONS:
        return dt
    return "float32" if np.array_equal(run.P, run.P.astype(np.float32)) else "float64"


def coarser(*dtypes: str) -> str:
    return max(dtypes, key=eps)


# ---- rules: a base rule and its changes, simulated step by step -----------------------------------
@dataclass(frozen=True, eq=False)
class Rule:
    """An optimizer with torch's equations, per-parameter coupled (``g + c*w``) and decoupled
    (``w <- w - lr*s*w``, or ``s*w`` with ``by_lr=False``) decay, and the lr of each step."""

    optimizer: str
    options: Mapping[str, Any]
    coupled: Mapping[str, float]
    decoupled: Mapping[str, float]
    lr: np.ndarray | None
    by_lr: bool = True
    text: str = ""

    def describe(self) -> str:
        opt = optimizers.get(self.optimizer)
        shown = {k: v for k, v in self.options.items()
                 if (k not in opt.defaults or v != opt.defaults[k]) and not (k in opt.roundings and not v)}  # fmt: skip
        parts = [f"{k}={_g(v)}" for k, v in shown.items()]
        for kind, d in (("coupled", self.coupled), ("decoupled" + ("" if self.by_lr else " (not x lr)"), self.decoupled)):
            vals = sorted({_g(v) for v in d.values()})
            if any(d.values()):
                parts.append(f"{kind} decay " + ", ".join(f"{n}: {_g(v)}" for n, v in d.items()) if len(vals) > 1 else f"{kind} decay {vals[0]}")
        return f"{opt.torch_class}({', '.join(parts)})"


def _g(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (tuple, list)):
        return "(" + ", ".join(_g(x) for x in v) + ")"
    return str(v)


def simulate(rule: Rule, run: Flat, steps: int, grads: np.ndarray) -> np.ndarray:
    """``run``'s parameters after each of its first ``steps`` steps as ``rule`` makes them, each step
    from ``run``'s own recorded parameters and ``grads`` (the buffers carried from step to step)."""
    options = dict(rule.options)
    lr_scale = options.pop("lr_scale", 1.0)
    flags = {k: v for k, v in options.items() if isinstance(v, bool)}
    c, s = run.vector(rule.coupled), run.vector(rule.decoupled)
    from xreg.backends.numpy.run import Layout

    cls = optimizers.get(rule.optimizer)
    opt = cls.reference(options, flags, run.P[0].copy(), Layout(run.shapes))
    out = np.empty((steps, run.P.shape[1]))
    with np.errstate(all="ignore"):
        for t in range(1, steps + 1):
            theta, lr = run.P[t - 1].copy(), float(rule.lr[t - 1])
            g = grads[t - 1] + c * theta
            k = ((lr * s) if rule.by_lr else s) if s.any() else None
            if k is not None and cls.decays_inside:  # torch's own decay, inside its step (Adafactor reads w first)
                out[t - 1] = opt.step(theta, g, lr * lr_scale, t, decay=k)
                continue
            if k is not None:
                theta = theta - k * theta
            out[t - 1] = opt.step(theta, g, lr * lr_scale, t)
    return out


def one_step_tolerance(run: Flat, dtype: str, steps: int) -> np.ndarray:
    P = run.P[: steps + 1]
    return TOLERANCE_FACTOR * eps(dtype) * (np.max(np.abs(P[:-1]), axis=1, initial=0.0) + np.max(np.abs(np.diff(P, axis=0)), axis=1, initial=0.0)) + np.finfo(float).tiny


def score(rule: Rule, run: Flat, grads: np.ndarray, steps: int, dtype: str) -> tuple[float, int]:
    """The worst step's gap over its one-step tolerance, and that step (1-based)."""
    pred = simulate(rule, run, steps, grads)
    ratio = np.max(np.abs(pred - run.P[1 : steps + 1]), axis=1) / one_step_tolerance(run, dtype, steps)
    ratio = np.where(np.isfinite(ratio), ratio, np.inf)
    worst = int(np.argmax(ratio))
    return float(ratio[worst]), worst + 1


def rule_from_meta(meta: Mapping[str, Any], names_of: Mapping[str, str], lr: np.ndarray | None, steps: int) -> Rule | None:
    """The rule a run's meta states (``optimizer`` and ``groups``, as TorchRecorder writes them);
    ``names_of`` maps the run's own names to A's. None where the meta does not state one."""
    if "groups" not in meta:
        return None  # no param groups (an optimizer's name alone, as a Recorder's meta may say): no rule to re-simulate
    name, groups = str(meta.get("optimizer", "")), meta.get("groups")
    who = f"the meta of the {meta.get('framework', 'recorded')} run"
    key = optimizers.by_name(name)
    if key is None:
        raise XregInputError(f"{who} names the optimizer {name!r}, which xreg does not know; one of: "
                             + ", ".join(optimizers.get(n).torch_class for n in optimizers.OPTIMIZERS) + ".")  # fmt: skip
    if not isinstance(groups, list) or not groups or not all(isinstance(g, dict) for g in groups):
        raise XregInputError(f"{who}: 'groups' must be a list of param groups (dicts of 'params' and hyperparameters); got {groups!r:.80}.")
    for g in groups:
        for k in ("weight_decay", "lr"):
            if k in g and not _finite_number(g[k]):
                raise XregInputError(f"{who}: a param group's {k!r} must be a finite number; got {str(g[k])[:40]}.")
        if not isinstance(g.get("params", []), list) or not all(isinstance(n, str) for n in g.get("params", [])):
            raise XregInputError(f"{who}: a param group's 'params' must be a list of names; got {str(g['params'])[:80]}.")
    opt = optimizers.get(key)
    if opt.two_d_only:
        return None  # Muon steps its other parameters by a second class the meta does not state: no one rule to re-simulate
    g0 = groups[0]
    try:
        options = opt.resolve({k: (tuple(v) if isinstance(v, list) else v) for k, v in g0.items() if k in opt.defaults})
    except XregInputError as exc:
        raise XregInputError(f"{who} states {opt.torch_class} with a value torch would refuse: {exc}") from None
    options = dict(opt.recorded(options, meta))  # torch's own rounding of its scalar state (NAdam's mu_product)
    if any(g.get("maximize") for g in groups):
        return None  # torch's maximize is issue 12's
    decoupled = opt.native_convention == "decoupled" or any(g.get("decoupled_weight_decay") for g in groups)
    per = {n: 0.0 for n in names_of.values()}
    for g in groups:
        for n in g.get("params", []):
            if n in names_of:
                per[names_of[n]] = float(g.get("weight_decay", 0.0))
    if lr is None:
        if not isinstance(g0.get("lr"), (int, float)):
            return None
        lr = np.full(steps, float(g0["lr"]))
    zero = {n: 0.0 for n in per}
    return Rule(key, options, zero if decoupled else per, per if decoupled else zero, lr, text="its recorded meta")


def _finite_number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:  # an int beyond any float
        return False


def fit_sgd(run: Flat, names: Sequence[str]) -> Rule | None:
    """Plain SGD ``w <- w - lr*(g + c*w)`` with one ``c`` per parameter, by least squares (needs grads and lr)."""
    if run.G is None or run.lr is None or run.steps == 0:
        return None
    c = {}
    for n in names:
        sl = run.slices[n]
        w, dw = run.P[:-1, sl], np.diff(run.P[:, sl], axis=0)
        resid = -dw / run.lr[:, None] - run.G[:, sl]  # = c*w
        den = float(np.sum(w * w))
        c[n] = float(np.sum(w * resid) / den) if den > 0 else 0.0
    plain = sgd.OPTIMIZERS[0]
    return Rule(plain.name, plain.resolve({}), c, {n: 0.0 for n in names}, run.lr, text="a plain-SGD fit")


# ---- fitting one number of a candidate ------------------------------------------------------------
def _residuals(rule: Rule, run: Flat, grads: np.ndarray, steps: int, tol: np.ndarray) -> np.ndarray:
    return ((simulate(rule, run, steps, grads) - run.P[1 : steps + 1]) / tol[:, None]).ravel()


def fit_number(make: Callable[[float], Rule], x0: float, run: Flat, grads: np.ndarray, steps: int, dtype: str,
               lo: float | None = None, hi: float | None = None) -> float:  # fmt: skip
    """The number x that makes ``make(x)`` follow ``run`` best: a log grid around ``x0`` (x0*1e-6 to x0*1e6, or
    within [lo, hi]), then Brent, then two Gauss-Newton steps (the residual is nearly linear near the fit)."""
    from scipy.optimize import minimize_scalar

    steps = min(steps, MAX_FIT_STEPS)
    tol = one_step_tolerance(run, dtype, steps)

    def cost(x: float) -> float:
        r = _residuals(make(x), run, grads, steps, tol)
        v = float(np.dot(r, r))
        return v if math.isfinite(v) else 1e300

    if lo is not None and hi is not None:
        grid = np.linspace(lo, hi, 41)
    else:
        grid = x0 * np.logspace(-6, 6, 97)
    costs = [cost(x) for x in grid]
    i = int(np.argmin(costs))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    x = float(minimize_scalar(cost, bounds=(a, b), method="bounded", options={"xatol": 1e-12 * max(abs(a), abs(b), 1e-300)}).x)
    for _ in range(2):
        r = _residuals(make(x), run, grads, steps, tol)
        h = 1e-6 * (abs(x) or 1.0)
        J = (_residuals(make(x + h), run, grads, steps, tol) - r) / h
        if not (np.all(np.isfinite(J)) and np.dot(J, J) > 0):
            break
        nx = x - float(np.dot(J, r) / np.dot(J, J))
        if cost(nx) <= cost(x):
            x = nx
    return x


# ---- the diagnosis --------------------------------------------------------------------------------
@dataclass
class Candidate:
    code: str
    what: str  # the change, in words
    rule: Rule
    score: float = math.inf
    worst_step: int = 0
    number: float | None = None  # the fitted number, if any
    option: OptionCause | None = None  # a change of the optimizer's own options, as its module states it


@dataclass
class Diagnosis:
    a: str
    b: str
    dtype: str
    steps: int
    first_divergence_step: int | None
    gap: float | None
    stage: str | None
    cause: str | None
    evidence: str
    fix: dict[str, str]
    alignment: list[str] = field(default_factory=list)
    base: str | None = None  # 'a' or 'b': whose rule was re-simulated on the other run
    base_rule: str | None = None
    ranking: list[dict[str, Any]] = field(default_factory=list)
    fix_code: dict[str, str] = field(default_factory=dict)  # side -> the other run's rule as code in this side's framework

    @property
    def differs(self) -> bool:
        return self.first_divergence_step is not None and self.cause != "round-off"

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a, "b": self.b, "dtype": self.dtype, "steps": self.steps,
            "first_divergence_step": self.first_divergence_step, "gap": self.gap, "stage": self.stage,
            "cause": self.cause, "evidence": self.evidence, "fix": self.fix, "alignment": self.alignment,
            "base": self.base, "base_rule": self.base_rule, "ranking": self.ranking, "fix_code": self.fix_code,
        }  # fmt: skip


def _gradient_stage(A: Flat, B: Flat, k: int, e: float, tol: np.ndarray) -> int | None:
    """The first step j <= k whose recorded gradients differ by more than round-off plus what the
    parameters' own gap explains (``10*L*gap``, L the largest gradient change per parameter change seen
    along A): the loss or the forward pass differs."""
    if A.G is None or B.G is None:
        return None
    with np.errstate(all="ignore"):
        dG, dP = np.max(np.abs(np.diff(A.G, axis=0)), axis=1), np.max(np.abs(np.diff(A.P[:-1], axis=0)), axis=1)
        L = float(np.nanmax(np.where(dP > 0, dG / dP, 0.0), initial=0.0))
    for j in range(1, k + 1):
        pgap = float(np.max(np.abs(A.P[j - 1] - B.P[j - 1])))
        if not pgap <= tol[j - 1]:
            return None
        ga, gb = A.G[j - 1], B.G[j - 1]
        scale = max(np.max(np.abs(ga)), np.max(np.abs(gb)), np.finfo(float).tiny)
        if np.max(np.abs(ga - gb)) > math.sqrt(e) * scale + 10 * L * pgap:
            return j
    return None


def _loss_scale(A: Flat, B: Flat, j: int, e: float) -> tuple[float | None, dict[str, float]]:
    ga, gb = A.G[j - 1], B.G[j - 1]
    per = {}
    for n, sl in A.slices.items():
        den = float(np.dot(ga[sl], ga[sl]))
        per[n] = float(np.dot(ga[sl], gb[sl]) / den) if den > 0 else math.nan
    den = float(np.dot(ga, ga))
    if den == 0:
        return None, per
    r = float(np.dot(ga, gb) / den)
    ok = np.linalg.norm(gb - r * ga) <= math.sqrt(e) * np.linalg.norm(gb)
    return (r if ok and r > 0 else None), per


def _own_rule(run: Flat, al: Alignment, side: str) -> Rule | None:
    """The rule a run states in its meta, else a plain-SGD fit of it (None: neither)."""
    names = {n: n for n in al.names} if side == "a" else {al.b_name[n]: n for n in al.names}
    try:
        stated = rule_from_meta(run.meta, names, run.lr, run.steps)
    except XregInputError:  # a gradient-stage finding does not need a rule the meta states badly
        stated = None
    return stated or fit_sgd(run, al.names)


def _reproduces(rule: Rule, run: Flat, dt: str) -> bool:
    """``rule`` re-simulated from the run's own recorded gradients lands on every step within 16x round-off."""
    return run.G is not None and score(rule, run, run.G, run.steps, dt)[0] <= 16


def _decay_split(G_first: np.ndarray, G_later: np.ndarray, w: np.ndarray, e: float) -> tuple[float, float] | None:
    """(a, b) with G_first = a*G_later + b*w to round-off (least squares), or None."""
    M = np.stack([G_later, w], axis=1)
    (a, b), *_ = np.linalg.lstsq(M, G_first, rcond=None)
    ok = np.linalg.norm(G_first - M @ np.array([a, b])) <= math.sqrt(e) * np.linalg.norm(G_first)
    return (float(a), float(b)) if ok else None


def _clip_order(A: Flat, B: Flat, j: int, e: float, own: Mapping[str, Rule | None], dt: str) -> tuple[str, float, str, float] | None:
    """(the side that adds the decay before clipping, the decay coefficient, the other side's torch class, a)
    where, at step j (the parameters agreeing), that side's recorded gradient is a*g + b*w of the other's g
    with a != 1 (its norm clipped with the decay in it) and b > 0, that side clips, and each run's own rule
    reproduces it from its recorded gradients."""
    if any(r is None for r in own.values()) or not all(_reproduces(own[s], run, dt) for s, run in (("a", A), ("b", B))):
        return None
    w = A.P[j - 1]
    for first, (Gf, Gl) in (("b", (B.G[j - 1], A.G[j - 1])), ("a", (A.G[j - 1], B.G[j - 1]))):
        if not _clips(B if first == "b" else A):
            continue  # the side that decays first must clip: a gradient of one norm at every step
        split = _decay_split(Gf, Gl, w, e)
        later = "a" if first == "b" else "b"
        coef = max(own[later].coupled.values(), default=0.0)
        if split is not None and split[1] > 0 and abs(split[0] - 1) > 1e-6 and coef > 0 and not any(own[first].coupled.values()):
            return first, coef, optimizers.get(own[later].optimizer).torch_class, split[0]
    return None


def _clips(run: Flat) -> bool:
    """The run's recorded gradient has one global norm at every step (at least 3): clip_grad_norm_ at work
    (torch clips to max_norm/(norm + 1e-6): one norm to a relative 1e-5; an unclipped run's moves far more)."""
    if run.G is None or run.steps < 3:
        return False
    n = np.linalg.norm(run.G, axis=1)
    return bool(n[0] > 0 and np.all(np.abs(n - n[0]) <= 1e-5 * n[0]))


def _clipped_side(A: Flat, B: Flat) -> tuple[str, float] | None:
    """The side whose recorded gradient has one global norm at every step (at least 3) while the other's
    varies: it clips (clip_grad_norm_ at max_norm = that norm). None otherwise."""
    flat = {"a": _clips(A), "b": _clips(B)}
    if flat["a"] != flat["b"]:
        side = "a" if flat["a"] else "b"
        return side, float(f"{np.max(np.linalg.norm((A if side == 'a' else B).G, axis=1)):.5g}")
    return None


def _nice_factor(f: float) -> str:
    for v, word in ((f, ""), (1 / f if f else 0, "1/")):
        if v >= 1 and abs(v - round(v)) <= 1e-6 * v:
            return f"{word}{round(v)}"
    return f"{f:.6g}"


def _candidates(base: Rule, target: Flat, names: Sequence[str]) -> list[tuple[Candidate, Callable[[float], Rule] | None, float, tuple]]:
    """Every change of ``base`` the cause table knows: (candidate, make(x) for a fitted number or None, x0, bounds)."""
    out: list[tuple[Candidate, Callable[[float], Rule] | None, float, tuple]] = []
    if target.lr is not None and base.lr is not None and not np.allclose(target.lr, base.lr, rtol=1e-12, atol=0):
        out.append((Candidate("lr-schedule", "the other run's recorded learning rates", replace(base, lr=target.lr)), None, 0, ()))
    kind = "coupled" if any(base.coupled.values()) else "decoupled" if any(base.decoupled.values()) else None
    if kind:
        decay = dict(getattr(base, kind))

        def scaled(x: float, kind=kind, decay=decay) -> Rule:
            return replace(base, **{kind: {n: v * x for n, v in decay.items()}})

        out.append((Candidate("decay-scale", f"the {kind} decay times {{x}}", base), scaled, 1.0, ()))
        on = [n for n, v in decay.items() if v]
        off = [n for n, v in decay.items() if not v]
        value = max(decay.values(), key=abs)
        toggles = [(f"decay {n} too ({value:.6g})", {n: value}) for n in off]
        if len(off) > 1:
            toggles.append((f"decay {', '.join(off)} too ({value:.6g})", {n: value for n in off}))
        if len(on) > 1:
            toggles += [(f"no decay on {n}", {n: 0.0}) for n in on]
            vectors = [n for n in on if target.slices[n].stop - target.slices[n].start == 1 or n.endswith("bias")]
            if 1 < len(vectors) < len(on):
                toggles.append((f"no decay on {', '.join(vectors)}", {n: 0.0 for n in vectors}))
        for what, change in toggles:
            out.append((Candidate("bias-decay", what, replace(base, **{kind: {**decay, **change}})), None, 0, ()))
        other = "decoupled" if kind == "coupled" else "coupled"

        def moved(x: float, kind=kind, other=other, decay=decay) -> Rule:
            return replace(base, **{kind: {n: 0.0 for n in decay}, other: {n: v * x for n, v in decay.items()}})

        out.append((Candidate("coupled-vs-decoupled", f"the decay {other}, at {{x}} times the coefficient", base), moved, 1.0, ()))
        if kind == "decoupled":
            lr0 = float(base.lr[0])

            def unscaled(x: float, decay=decay) -> Rule:
                return replace(base, by_lr=not base.by_lr, decoupled={n: v * x for n, v in decay.items()})

            x0 = lr0 if base.by_lr else 1 / lr0
            out.append((Candidate("decoupled-lr-scaling", "the decoupled decay " + ("not " if base.by_lr else "") + "multiplied by lr, rate x{x}", base),
                        unscaled, x0, ()))  # fmt: skip
    for what, overrides in optimizers.get(base.optimizer).alias_defaults:
        out.append((Candidate("optimizer-defaults", what, replace(base, options={**base.options, **overrides})), None, 0, ()))
    for oc in optimizers.get(base.optimizer).option_causes(base.options):  # the class's own options (SGD's dampening)
        if oc.fit is None:
            out.append((Candidate(oc.code, oc.what, replace(base, options={**base.options, **oc.overrides}), option=oc), None, 0, ()))
        else:
            change = lambda x, key=oc.fit: replace(base, options={**base.options, key: x})  # noqa: E731
            out.append((Candidate(oc.code, oc.what, base, option=oc), change, oc.x0, oc.bounds))
    return out


@dataclass(frozen=True)
class _Sides:
    """What a cause's fix writer reads: the candidate, the base rule's side (``me``) and the other (``other``)."""

    cand: Candidate | None
    me: str
    other: str
    base: Rule | None
    base_run: Flat
    target_run: Flat
    extra: Mapping[str, Any]

    @property
    def opt(self) -> optimizers.Optimizer:
        return optimizers.get(self.base.optimizer)

    @property
    def kind(self) -> str:
        return "coupled" if any(self.base.coupled.values()) else "decoupled"


def _fix_lr_schedule(x: _Sides) -> dict[str, str]:
    changes = lambda lr: int(np.sum(np.diff(lr) != 0))  # noqa: E731
    per_epoch = x.me if changes(x.base_run.lr) < changes(x.target_run.lr) else x.other
    return {per_epoch: "call scheduler.step() once per batch (after optimizer.step()), as the other run does",
            "b" if per_epoch == "a" else "a": "step the schedule once per epoch (after the epoch's last batch), as the other run does"}  # fmt: skip


def _fix_decay_scale(x: _Sides) -> dict[str, str]:
    f = x.cand.number
    c_base = max(getattr(x.base, x.kind).values(), key=abs)
    inv = _nice_factor(1 / f)
    scratch = not x.extra.get("code", {}).get(x.other) and str(x.target_run.meta.get("framework", "")) not in ("torch", "optax", "jax", "flax")
    return {x.me: f"weight_decay={c_base * f:.6g} (x{_nice_factor(f)}), as the other run's coefficient",
            x.other: f"decay coefficient {c_base:.6g} (x{inv} yours)" + (
                f": in a scratch loop's (sum_i grad_i + lam*w)/m with m = {inv}, lam = {c_base * float(inv):.6g}" if inv.isdigit() and scratch
                else f": weight_decay={c_base:.6g}")}  # fmt: skip


def _fix_coupled_vs_decoupled(x: _Sides) -> dict[str, str]:
    """Each side in the other's form, as the optimizer's module spells it in torch (its class, its sibling,
    ``decoupled_weight_decay=True``), or as a line of the loop / L2 in the loss where torch has none."""
    opt, c = x.opt, max(getattr(x.base, x.kind).values(), key=abs)
    rate = c * x.cand.number
    if x.kind == "coupled":
        form = opt.torch_form("decoupled")
        if form is not None:
            dec = f"torch.optim.{form[0]}(..., weight_decay={rate:.6g}{''.join(', ' + f for f in form[1])})"
        else:  # torch's class couples its weight_decay: the decay is a line of the loop
            dec = (f"torch.optim.{opt.torch_class}(...{', weight_decay=0' if opt.takes_weight_decay else ''}) and, before each "
                   f"optimizer.step(), `with torch.no_grad(): p.mul_(1 - lr*{rate:.6g})` for each decayed p")  # fmt: skip
        return {x.me: f"decouple the decay: {dec}",
                x.other: f"couple the decay (L2 in the gradient, weight_decay={c:.6g}) in place of the decoupled one"}  # fmt: skip
    form = opt.torch_form("coupled")
    return {x.me: (f"couple the decay: torch.optim.{form[0]}(..., weight_decay={rate:.6g})" if form else
                   f"couple the decay: L2 in the loss, + {rate:.6g}/2*||w||^2 (torch.optim.{opt.torch_class} has no coupled weight_decay)"),
            x.other: f"decouple the decay: w <- w - lr*{c:.6g}*w after the direction, as torch's {opt.torch_class}"}  # fmt: skip


def _fix_decoupled_lr_scaling(x: _Sides) -> dict[str, str]:
    s = max(x.base.decoupled.values(), key=abs)
    if x.base.by_lr:
        return {x.other: f"decay by lr*{s:.6g}*w (torch's decoupled weight_decay and optax's add_decayed_weights before the lr "
                         f"multiply by lr) instead of {s * x.cand.number:.6g}*w",
                x.me: f"weight_decay={s * x.cand.number / float(x.base.lr[0]):.6g} (= the other run's rate / lr, for a constant lr)"}  # fmt: skip
    return {x.other: f"decay by {s:.6g}*w without lr", x.me: f"decay by lr*{s * x.cand.number:.6g}*w"}


def _fix_bias_decay(x: _Sides) -> dict[str, str]:
    al = x.extra.get("al")
    side_names = lambda side, rule: [n if side == "a" or al is None else al.b_name[n]  # noqa: E731
                                     for n, c in {**rule.coupled, **rule.decoupled}.items() if not c]  # fmt: skip
    left = lambda side, rule: ", ".join(repr(n) for n in side_names(side, rule)) or "none"  # noqa: E731
    return {x.me: (f"{x.cand.what}: decay every parameter but {left(x.me, x.cand.rule)} (torch: a param group with "
                   "weight_decay=0 for those; optax: mask=xreg.twins.decay_mask((their names,)))"),
            x.other: f"decay every parameter but {left(x.other, x.base)}, as the other run"}  # fmt: skip


def _fix_optimizer_defaults(x: _Sides) -> dict[str, str]:
    over = {k: v for k, v in x.cand.rule.options.items() if x.base.options.get(k, None) != v}
    stated = ", ".join(f"{k}={_g(v)}" for k, v in x.base.options.items() if (k in over or k in x.opt.defaults) and k not in x.opt.roundings)
    return {x.other: f"state torch's values: {stated}" + ("; eps outside the root (optax: eps_in_sqrt=False)" if over.get("eps_in_sqrt") else "")
            + ("; lr > 0 subtracts the direction (optax: learning_rate=lr)" if over.get("lr_scale") else ""),
            x.me: f"use the other run's form: {x.cand.what}"}  # fmt: skip


def _fix_loss_scale(x: _Sides) -> dict[str, str]:
    r = x.extra["factor"]
    return {"b": f"divide the loss by {_nice_factor(r)} (B's gradients are {r:.6g}x A's): a mean, not a sum" if r > 1
            else f"multiply the loss by {_nice_factor(1 / r)}",
            "a": f"scale the loss by {_nice_factor(r)} (reduction='sum' if that is the row count), or the lr by the same factor for plain SGD"}  # fmt: skip


def _fix_round_off(x: _Sides) -> dict[str, str]:
    return dict.fromkeys("ab", "nothing to fix: compare fewer steps, or run in float64 (the rules are the same)")


# One writer per cause of the table (the causes of a class's own options are worded by its module).
FIX_WRITERS: dict[str, Callable[[_Sides], dict[str, str]]] = {
    "lr-schedule": _fix_lr_schedule, "decay-scale": _fix_decay_scale, "coupled-vs-decoupled": _fix_coupled_vs_decoupled,
    "decoupled-lr-scaling": _fix_decoupled_lr_scaling, "bias-decay": _fix_bias_decay, "optimizer-defaults": _fix_optimizer_defaults,
    "loss-scale": _fix_loss_scale, "round-off": _fix_round_off,
}  # fmt: skip
NEEDS_CANDIDATE = ("decay-scale", "coupled-vs-decoupled", "decoupled-lr-scaling", "bias-decay", "optimizer-defaults")


def _fixes(code: str, cand: Candidate | None, base_side: str, base: Rule, base_run: Flat, target_run: Flat, extra: Mapping[str, Any]) -> dict[str, str]:
    """The one-line change on each side that makes the runs equal."""
    x = _Sides(cand, base_side, "b" if base_side == "a" else "a", base, base_run, target_run, extra)
    if cand is not None and cand.option is not None:  # a cause of the class's own options: its module words the fixes
        return dict(zip((x.me, x.other), cand.option.fixes(base.options, cand.number or 0.0)))
    if code not in FIX_WRITERS or (code in NEEDS_CANDIDATE and cand is None):
        return {}
    return FIX_WRITERS[code](x)


def diagnose(ra: RecordedRun, rb: RecordedRun, labels: tuple[str, str] = ("A", "B"), mapping: Mapping[str, str] | None = None,
             dtype: str | None = None) -> Diagnosis:  # fmt: skip
    al = align(ra, rb, mapping)
    A, B = flat(ra, al, "a", labels[0]), flat(rb, al, "b", labels[1])
    if A.steps != B.steps:
        raise XregInputError(f"The runs have different numbers of steps: {labels[0]} {A.steps}, {labels[1]} {B.steps}.")
    if dtype is not None and dtype not in PRECISIONS:
        raise XregInputError(f"--dtype must be one of {', '.join(PRECISIONS)}; got {dtype!r}.")
    dt = dtype or coarser(precision(A), precision(B))
    e = eps(dt)
    head = dict(a=labels[0], b=labels[1], dtype=dt, steps=A.steps, alignment=al.lines())
    with np.errstate(invalid="ignore"):
        gaps = np.max(np.abs(A.P - B.P), axis=1, initial=0.0)
    tol = tolerance(dt, A.P, B.P)
    k = first_past(gaps, tol)
    if k is None:
        return Diagnosis(**head, first_divergence_step=None, gap=None, stage=None, cause=None,
                         evidence=f"every step within round-off (largest gap {np.max(gaps):.3e}, tolerance {tol[-1]:.3e} at the last step)", fix={})  # fmt: skip
    where = max(al.names, key=lambda n: np.nan_to_num(np.max(np.abs(A.P[k, A.slices[n]] - B.P[k, A.slices[n]]), initial=0.0), nan=np.inf))
    lead = f"first divergence at step {k}: '{where}' differs by {gaps[k]:.3e} (tolerance {tol[k]:.3e}, {dt}). "
    common = dict(head, first_divergence_step=k, gap=float(gaps[k]))
    if k == 0:  # recorded, not inferred: the two starts themselves
        apart = [n for n in al.names if not np.array_equal(A.P[0, A.slices[n]], B.P[0, A.slices[n]])]
        ev = (f"the runs start from different parameters: {', '.join(repr(n) for n in apart)} differ at step 0 "
              f"(largest gap {gaps[0]:.3e}); a step-by-step comparison needs one start")  # fmt: skip
        fix = "start both runs from the same parameters (save A's initial values and load them in B, or the same seed and init)"
        return Diagnosis(**common, stage="start", cause="different-start", evidence=ev, fix={"a": fix, "b": fix})

    j = _gradient_stage(A, B, k, e, tol)
    if j is not None:
        return _gradient_diagnosis(A, B, al, labels, j, dt, common, lead)
    return _update_diagnosis(A, B, al, k, dt, gaps, common, lead)


def _gradient_diagnosis(A: Flat, B: Flat, al: Alignment, labels: tuple[str, str], j: int, dt: str, common: dict, lead: str) -> Diagnosis:
    """Stage gradient: at step ``j`` the parameters agree and the recorded gradients do not. The decay on the
    other side of the clipping, a clipping on one side, a loss scale (each re-simulated), or unexplained."""
    e = eps(dt)
    r, per = _loss_scale(A, B, j, e)
    own = {side: _own_rule(run, al, side) for side, run in (("a", A), ("b", B))}
    name = {"a": labels[0], "b": labels[1]}
    clip = _clip_order(A, B, j, e, own, dt)
    if clip is not None:
        first, coef, cls, scale = clip
        later = "b" if first == "a" else "a"
        ev = (f"at step {j} the parameters agree and {name[first]}'s recorded gradient is a*g + b*w of {name[later]}'s g "
              f"(a = {scale:.6g} != 1, b > 0): {name[first]} adds the decay to the gradient before "
              f"clipping it, {name[later]} decays after the clipping (torch's weight_decay); each run's own rule re-simulated "
              "from its recorded gradients reproduces it at every step")  # fmt: skip
        fix = {first: f"clip first, then decay: torch.optim.{cls}(..., weight_decay={coef:.6g}) and clip_grad_norm_ before "
                      "optimizer.step(), without adding the decay to p.grad",
               later: f"decay, then clip: weight_decay=0 and, before clip_grad_norm_, `p.grad.add_(p, alpha={coef:.6g})` for "
                      "each decayed p"}  # fmt: skip
        return Diagnosis(**common, stage="gradient", cause="clip-order", evidence=lead + ev, fix=fix)
    clipped = _clipped_side(A, B)
    if clipped is not None:
        side, norm = clipped
        other = "b" if side == "a" else "a"
        ev = (f"at step {j} the parameters agree and the recorded gradients do not; {name[side]}'s gradient has the global "
              f"norm {norm:.6g} at every one of its {A.steps} steps while {name[other]}'s varies: {name[side]} clips it "
              f"(clip_grad_norm_), {name[other]} does not")  # fmt: skip
        fix = {other: f"clip as the other run: torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={norm:.6g}) "
                      "before optimizer.step() (optax: optax.clip_by_global_norm first in the chain)",
               side: "do not clip (remove clip_grad_norm_), as the other run"}  # fmt: skip
        return Diagnosis(**common, stage="gradient", cause="clipping", evidence=lead + ev, fix=fix)
    if r is not None:
        base = own["a"] or own["b"]
        nice = _nice_factor(r)
        whole = nice.isdigit() or (nice.startswith("1/") and nice[2:].isdigit())
        if whole and base is not None and all(_reproduces(base, run, dt) for run in (A, B)):
            ev = (f"at step {j} the parameters agree but B's gradient is {r:.6g}x A's in every parameter "
                  f"(factor {nice}): the same direction, another scale of the loss; one rule ({base.describe()}) "
                  "re-simulated from each run's own recorded gradients reproduces both runs at every step")  # fmt: skip
            return Diagnosis(**common, stage="gradient", cause="loss-scale", evidence=lead + ev,
                             fix=_fixes("loss-scale", None, "a", None, A, B, {"factor": r}))  # fmt: skip
        why = ("not a whole factor (a sum over another number of rows or accumulated steps gives a whole one)" if not whole
               else "no one rule re-simulated from each run's own gradients reproduces both runs")  # fmt: skip
        lead += f"at step {j} B's gradient is {r:.6g}x A's in every parameter, but {why}: not claimed as a loss scale. "
    ratios = ", ".join(f"{n}: {v:.6g}" for n, v in per.items())
    ev = (f"at step {j} the parameters agree to round-off and the recorded gradients do not: B/A per parameter {ratios}. "
          "The loss or the forward pass differs (no constant factor: not a loss scale); no optimizer change explains a gradient")  # fmt: skip
    return Diagnosis(**common, stage="gradient", cause="unexplained", evidence=lead + ev, fix={})



def _base_rule(A: Flat, B: Flat, al: Alignment) -> tuple[str, Rule | None]:
    """The side whose rule is known, and that rule: a run's meta first (A's, then B's), else a plain-SGD fit."""
    names_a = {n: n for n in al.names}
    names_b = {al.b_name[n]: n for n in al.names}
    base_side, base = "a", rule_from_meta(A.meta, names_a, A.lr, A.steps)
    if base is None:
        b_rule = rule_from_meta(B.meta, names_b, B.lr, B.steps)
        if b_rule is not None:
            base_side, base = "b", b_rule
    if base is None:
        base_side, base = "a", fit_sgd(A, al.names)
    if base is None:
        base_side, base = "b", fit_sgd(B, al.names)
    return base_side, base


def _fitted(on_target: Rule, target: Flat, names: Sequence[str], grads_t: np.ndarray, steps_t: int, dt: str, limit: float) -> list[Candidate]:
    """Every change the cause table knows, its number fitted where it has one (a round number where that
    reproduces as well), each scored by re-simulation on the other run."""
    found: list[Candidate] = []
    for cand, make, x0, bounds in _candidates(on_target, target, names):
        if make is not None:
            lo, hi = bounds if bounds else (None, None)
            x = fit_number(make, x0, target, grads_t, steps_t, dt, lo, hi)
            cand.number, cand.rule = x, make(x)
            nice = _nice_factor(x)
            exact = 1 / float(nice[2:]) if nice.startswith("1/") else float(nice)
            if exact != x and score(make(exact), target, grads_t, steps_t, dt)[0] <= limit:
                cand.number, cand.rule = exact, make(exact)  # a round number (1, 1/m, n) where it reproduces as well
            cand.what = cand.what.format(x=_nice_factor(cand.number))
        cand.score, cand.worst_step = score(cand.rule, target, grads_t, steps_t, dt)
        found.append(cand)
    return found


def _update_diagnosis(A: Flat, B: Flat, al: Alignment, k: int, dt: str, gaps: np.ndarray, common: dict, lead: str) -> Diagnosis:
    """Stage update: one run's rule (its meta, or a plain-SGD fit) and every change of it the cause table
    knows, each re-simulated on the other run from that run's own recorded state."""
    base_side, base = _base_rule(A, B, al)
    if base is None:
        ev = "neither run states its rule (record torch with TorchRecorder, or put 'optimizer' and 'groups' in meta) and plain SGD cannot be fitted (no grads or lr)"
        return Diagnosis(**common, stage="update", cause="unexplained", evidence=lead + ev, fix={})
    base_run, target = (A, B) if base_side == "a" else (B, A)
    # the base rule as the other run computes it: its own roundings of the class's scalar state (NAdam's
    # mu_product, ASGD's eta in a torch loop left at the float32 default), not the base run's
    on_target = replace(base, options=dict(optimizers.get(base.optimizer).recorded(base.options, target.meta)))
    grads_base = base_run.G
    if grads_base is None:
        ev = f"{base_run.label} has no recorded gradients: its rule cannot be re-simulated"
        return Diagnosis(**common, stage="update", cause="unexplained", evidence=lead + ev, fix={}, base=base_side)
    self_score, self_step = score(base, base_run, grads_base, base_run.steps, dt)
    limit = max(1.0, 4.0 * self_score)
    stage = "update"
    if self_score > 16:
        ev = (f"{base_run.label}'s rule ({base.describe()}, from {base.text}) does not reproduce {base_run.label} itself "
              f"(step {self_step} off by {self_score:.3g}x the one-step round-off): its meta does not state the rule it ran")  # fmt: skip
        return Diagnosis(**common, stage=stage, cause="unexplained", evidence=lead + ev, fix={}, base=base_side, base_rule=base.describe())
    if target.G is not None:
        grads_t, steps_t = target.G, target.steps
    else:  # the other run's state, with the base run's gradients while the parameters agree
        grads_t, steps_t = grads_base[:k], k
    base_desc = base.describe() + (f", {base.text}" if base.text != "its recorded meta" else "")  # say a fitted rule is one
    common.update(base=base_side, base_rule=base_desc)
    same_score, same_step = score(on_target, target, grads_t, steps_t, dt)
    if same_score <= limit:
        ev = (f"{base_run.label}'s rule ({base_desc}) re-simulated on each of {target.label}'s {steps_t} steps from {target.label}'s own state "
              f"lands within {same_score:.2g}x the one-step round-off (its own run: {self_score:.2g}x): the same rule; "
              f"the gap grew from round-off: {gaps[1]:.2e} at step 1, {gaps[k]:.2e} at step {k}")  # fmt: skip
        return Diagnosis(**common, stage=stage, cause="round-off", evidence=lead + ev,
                         fix=_fixes("round-off", None, base_side, base, base_run, target, {}))  # fmt: skip
    found = _fitted(on_target, target, al.names, grads_t, steps_t, dt, limit)
    order = {c: i for i, c in enumerate(causes.CODES)}
    ranking = sorted(found, key=lambda c: (c.score > limit, order[c.code] if c.score <= limit else 0, c.score))
    rank_json = [{"cause": c.code, "change": c.what, "number": c.number,
                  "score": c.score, "reproduces": c.score <= limit} for c in ranking]  # fmt: skip
    common["ranking"] = rank_json
    best = ranking[0] if ranking else None
    if best is None or best.score > limit:
        closest = f"; closest: {best.code} ({best.what}), step {best.worst_step} off by {best.score:.3g}x the one-step round-off" if best else ""
        ev = (f"{base_run.label}'s rule ({base_desc}) does not reproduce {target.label} (step {same_step} off by {same_score:.3g}x the one-step "
              f"round-off), and no known change of it does{closest}")  # fmt: skip
        return Diagnosis(**common, stage=stage, cause="unexplained", evidence=lead + ev, fix={})
    extra = _lr_traces(base_run, target) if best.code == "lr-schedule" else ""
    ev = (f"{base_run.label}'s rule ({base_desc}) does not reproduce {target.label} (step {same_step} off by {same_score:.3g}x the one-step "
          f"round-off); with {best.what} every one of {target.label}'s {steps_t} steps lands within {best.score:.2g}x of it "
          f"(re-simulated from {target.label}'s own state){extra}")  # fmt: skip
    codes = fix_code(best, base_side, base, al, A, B)
    return Diagnosis(**common, stage=stage, cause=best.code, evidence=lead + ev,
                     fix=_fixes(best.code, best, base_side, base, base_run, target, {"code": codes, "al": al}),
                     fix_code=codes)  # fmt: skip


def _lr_traces(base_run: Flat, target: Flat) -> str:
    """Where two recorded lr traces first part, and how often each changes."""
    every = lambda lr: ", ".join(f"{int(v)}" for v in np.unique(np.diff(np.flatnonzero(np.diff(lr) != 0)))[:3]) or "never"  # noqa: E731
    first = int(np.flatnonzero(~np.isclose(base_run.lr, target.lr, rtol=1e-12, atol=0))[0])
    return (f"; the lr traces first differ at step {first + 1} ({base_run.label} {base_run.lr[first]:.6g}, {target.label} "
            f"{target.lr[first]:.6g}); {base_run.label}'s lr changes every {every(base_run.lr)} steps, {target.label}'s every {every(target.lr)}")  # fmt: skip


def fix_code(best: Candidate, base_side: str, base: Rule, al: Alignment, A: Flat, B: Flat) -> dict[str, str]:
    """Each side's fix as code in its own framework (:mod:`xreg.analysis.fixcode`): the base side takes the
    rule that reproduced the other run, the other side takes the base rule; where one expression states it."""
    from xreg.analysis import fixcode

    out = {}
    for side, rule in ((base_side, best.rule), ("b" if base_side == "a" else "a", base)):
        run = A if side == "a" else B
        names = {n: n if side == "a" else al.b_name[n] for n in al.names}
        code = fixcode.code_for(rule, str(run.meta.get("framework", "")), names)
        if code is not None:
            out[side] = code
    return out


def text(d: Diagnosis) -> str:
    lines = [f"diagnose: {d.a} vs {d.b} ({d.steps} steps, {d.dtype})"]
    lines += [f"  aligned: {x}" for x in d.alignment]
    if d.first_divergence_step is None:
        lines.append(f"verdict: the runs match ({d.evidence})")
        return "\n".join(lines)
    lines.append(f"first divergence: step {d.first_divergence_step} (gap {d.gap:.3e})")
    lines.append(f"stage: {d.stage}")
    lines.append(f"cause: {d.cause} — {causes.CAUSES[d.cause].meaning}")
    lines.append(f"evidence: {d.evidence}")
    for side, label in (("a", d.a), ("b", d.b)):
        if side in d.fix:
            lines.append(f"fix in {label}: {d.fix[side]}")
        if side in d.fix_code:
            lines.append(f"  as code (runs, and re-runs to a match): {d.fix_code[side]}")
    if d.ranking:
        lines.append("candidates (re-simulated; score = worst step / one-step round-off):")
        lines += [f"  {'*' if r['reproduces'] else ' '} {r['cause']:<22} {r['score']:<10.3g} {r['change']}" for r in d.ranking[:8]]
    return "\n".join(lines)
