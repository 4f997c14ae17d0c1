"""torch's learning-rate schedulers, one module per class, in table order (see :mod:`xreg.schedules.base`).

A run's schedule is a torch class name (or ``constant``: no scheduler) and its torch-named options,
stepped once per epoch (``every='epoch'``, torch's usual loop and xreg's default) or once per optimizer
step (``every='step'``). The learning rate of step ``k`` is the scheduler's lr after ``t`` calls, with
``t`` the epoch of step ``k`` or ``k`` itself:

* torch runs the real ``torch.optim.lr_scheduler`` class (:func:`torch_scheduler`);
* NumPy reads :func:`lrs`, the class's twin of torch's arithmetic (its lrs are torch's, bit for bit);
* JAX executes :func:`code`, the exact optax schedule (or xreg's twin where optax has none), called
  with optax's step count; the naive port executes the optax schedule a porter writes first.

Every difference a naive schedule can make is a code of :data:`NAIVE_CODES`: the class's own (e.g.
``staircase``), ``epoch-count`` (a per-epoch scheduler ported to an optax schedule, which optax calls with
the step count: it runs ``batches`` times too fast) and ``int32-count`` (optax's chain calls the schedule
with its int32 count, and ``exponential_decay``, ``linear_schedule`` and ``polynomial_schedule`` then
compute in float32 even with x64 on).
"""

from __future__ import annotations

import ast
import functools
from typing import Any, Mapping

from xreg.core.checks import XregInputError, check_choice
from xreg.schedules import (constant, cosine, cyclic, exponential, lambdas, linear, multistep, onecycle, plateau,
                            polynomial, sequential, step, warm_restarts)  # fmt: skip
from xreg.schedules.base import CALLS, LR, MAX_COUNT, REQUIRED, Context, Naive, Scheduler, num  # noqa: F401 (the schema, re-exported)

CONSTANT = "constant"
EVERY = ("epoch", "step")
REGISTRY: dict[str, Scheduler] = {
    s.name: s
    for s in (step.SCHEDULER, multistep.SCHEDULER, exponential.SCHEDULER, cosine.SCHEDULER, warm_restarts.SCHEDULER,
              onecycle.SCHEDULER, linear.SCHEDULER, constant.SCHEDULER, polynomial.SCHEDULER, cyclic.SCHEDULER,
              lambdas.LAMBDA, lambdas.MULTIPLICATIVE, sequential.SEQUENTIAL, sequential.CHAINED, plateau.PLATEAU)  # fmt: skip
}
ALIASES = {s.alias: s.name for s in REGISTRY.values() if s.alias}
NAMES: tuple[str, ...] = (CONSTANT, *REGISTRY)
EPOCH_COUNT, INT32_COUNT, MOMENTUM_FIXED = "epoch-count", "int32-count", "momentum-not-cycled"
MOMENTUM_FIXED_WHY = ("optax's schedules set only the lr: the ported optimizer keeps its own momentum (Adam's beta1), where "
                      "torch's cycle_momentum (OneCycleLR's and CyclicLR's default) moves it beside the lr")  # fmt: skip
EPOCH_COUNT_WHY = ("a per-epoch torch scheduler ported to an optax schedule, which optax calls with the step count: it runs "
                   "batches-per-epoch times too fast")  # fmt: skip
INT32_COUNT_WHY = ("optax's chain calls the schedule with its int32 count, and optax.exponential_decay, linear_schedule and "
                   "polynomial_schedule then return float32 even with x64 on (call it with jnp.asarray(count, jnp.float64))")  # fmt: skip
NAIVE_CODES: tuple[str, ...] = (*(s.naive.code for s in REGISTRY.values() if s.naive), EPOCH_COUNT, INT32_COUNT, MOMENTUM_FIXED)
MAX_MEMBERS = 8
RAW_OPTIONS = ("expr", "schedulers")  # options read as the text typed (an expression, member schedulers)
MAX_SEEN = 100_000  # scheduler calls whose lrs decide whether a per-epoch schedule changes at all (a long run's first ones)


def canonical(name: Any) -> str:
    """The torch class name of ``name`` (any case; xreg's older names 'step', 'exponential', 'cosine', 'lambda')."""
    if isinstance(name, str):
        name = ALIASES.get(name, name)
        lower = {n.lower(): n for n in NAMES}
        name = lower.get(name.lower(), name)
    return check_choice("schedule", name, NAMES)


def get(name: str) -> Scheduler:
    return REGISTRY[canonical(name)]


def parse_member(text: str) -> tuple[str, dict[str, Any]]:
    """``'CosineAnnealingLR(T_max=95, eta_min=0.0)'`` -> ('CosineAnnealingLR', {'T_max': 95, 'eta_min': 0.0})."""
    bad = XregInputError(f"A scheduler must be written Name(key=value, ...), e.g. 'LinearLR(start_factor=0.1, "
                         f"total_iters=5)'. Got {text!r} instead.")  # fmt: skip
    source = text.strip()
    try:
        node = ast.parse(source, mode="eval").body
    except SyntaxError:
        raise bad from None
    if isinstance(node, ast.Name):
        return node.id, {}
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.args or any(k.arg is None for k in node.keywords):
        raise bad
    out: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg in out:
            raise XregInputError(f"The option {kw.arg!r} is given twice in {text!r}.")
        out[kw.arg] = _inline_value(kw.arg, kw.value, ast.get_source_segment(source, kw.value) or "")
    return node.func.id, out


def _inline_value(key: str, node: ast.AST, segment: str) -> Any:
    """An inline option as the command line reads it: a Python literal; true/false; nan/inf (refused by the
    option's own check); an expression (``expr=0.9**epoch``) or other text kept as typed."""
    if key in RAW_OPTIONS:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else segment
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    low = segment.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("nan", "inf", "-inf", "none"):
        return None if low == "none" else float(low)
    return segment


def _members(value: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(value, str):  # 'LinearLR(...), CosineAnnealingLR(...)' (the command line's form)
        try:
            node = ast.parse(f"[{value}]", mode="eval").body
        except SyntaxError:
            raise XregInputError(f"The 'schedulers' option must list members written Name(key=value, ...). Got {value!r} instead.") from None
        value = [ast.get_source_segment(f"[{value}]", e) for e in node.elts]
    if not isinstance(value, (list, tuple)) or not value or len(value) > MAX_MEMBERS:
        raise XregInputError(f"The 'schedulers' option must list 1 to {MAX_MEMBERS} member schedulers. Got {value!r} instead.")
    out = []
    for m in value:
        if isinstance(m, str):
            out.append(parse_member(m))
        elif isinstance(m, Mapping) and isinstance(m.get("name"), str):
            out.append((m["name"], {k: v for k, v in m.items() if k != "name"}))
        elif isinstance(m, (list, tuple)) and len(m) == 2 and isinstance(m[0], str):
            out.append((m[0], dict(m[1])))
        else:
            raise XregInputError(f"A member scheduler must be 'Name(key=value, ...)' or a table with a 'name'. Got {m!r} instead.")
    return out


def resolve(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults filled and every option checked (an unknown one refused). The options whose xreg default
    depends on the run (:data:`CALLS`, :data:`LR`) stay those markers until :func:`for_run`."""
    name = canonical(name)
    if name == CONSTANT:
        if options:
            raise XregInputError(f"Unknown option {sorted(options)[0]!r} for schedule 'constant'. Allowed options: none.")
        return {}
    s = REGISTRY[name]
    unknown = sorted(set(options) - set(s.defaults))
    if unknown:
        raise XregInputError(f"Unknown option {unknown[0]!r} for schedule '{name}'. Allowed options: "
                             f"{', '.join(repr(k) for k in s.defaults)}.")  # fmt: skip
    out = {**s.defaults, **options}
    missing = [k for k, v in out.items() if v is REQUIRED]
    if missing:
        raise XregInputError(f"The schedule '{name}' needs the option {missing[0]!r}.")
    if s.members:
        return _resolve_members(s, out)
    marker = lambda k, v: isinstance(v, str) and v in (CALLS, LR) and s.defaults[k] == v  # noqa: E731 (filled by for_run)
    return {k: v if marker(k, v) else s.checks[k](k, v) for k, v in out.items()}


def _resolve_members(s: Scheduler, out: dict[str, Any]) -> dict[str, Any]:
    members = []
    for m, mo in _members(out["schedulers"]):
        m = canonical(m)
        allowed = sequential.CHAINABLE if s.name == "ChainedScheduler" else sequential.MEMBERS
        if m not in allowed:
            raise XregInputError(f"{s.name} takes the members {', '.join(allowed)}; not {m} (its lr is not "
                                 f"{'a factor on the lr it finds' if s.name == 'ChainedScheduler' else 'derived from the lr it finds'}).")
        members.append((m, tuple(resolve(m, mo).items())))
    resolved = {"schedulers": tuple(members)}
    if s.name == "SequentialLR":
        ms = out["milestones"]
        ms = (ms,) if isinstance(ms, int) and not isinstance(ms, bool) else ms
        if isinstance(ms, str) or not isinstance(ms, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_COUNT for v in ms):
            raise XregInputError(f"The 'milestones' option of SequentialLR must be a list of ints >= 1. Got {out['milestones']!r} instead.")
        if list(ms) != sorted(set(ms)) or len(ms) != len(members) - 1:
            raise XregInputError(f"SequentialLR needs {len(members) - 1} increasing milestone(s) for {len(members)} members; got {list(ms)}.")
        resolved["milestones"] = tuple(ms)
    return resolved


def for_run(name: str, options: Mapping[str, Any], ctx: Context) -> tuple[tuple[str, Any], ...]:
    """The options of a run (``ctx``): the markers replaced (T_max by the calls, max_lr by the lr, a member's by
    its span), the cross-option checks made and the twin run over every call (an error torch would raise
    on the way, a division by zero, is refused here). Sorted items: the structure's hashable form. Computed once
    per schedule and run (every structure of a command asks: the twin over a long per-step run takes ~0.1 s)."""
    return _for_run(canonical(name), tuple(sorted(dict(options).items())), ctx)


@functools.lru_cache(maxsize=256)
def _for_run(name: str, items: tuple[tuple[str, Any], ...], ctx: Context) -> tuple[tuple[str, Any], ...]:
    if name == CONSTANT:
        return ()
    s = REGISTRY[name]
    o = dict(items)
    if s.members:
        spans = sequential.spans(o, ctx.calls) if name == "SequentialLR" else [ctx.calls] * len(o["schedulers"])
        o["schedulers"] = tuple((m, for_run(m, dict(mo), Context(n, ctx.batches, ctx.every, ctx.lr))) for (m, mo), n in zip(o["schedulers"], spans))
    else:
        o = {k: ctx.calls if v == CALLS and s.defaults[k] == CALLS else ctx.lr if v == LR and s.defaults[k] == LR else v
             for k, v in o.items()}  # fmt: skip
        if s.validate is not None:
            s.validate(o, ctx)
    if reads_loss(name):
        return tuple(sorted(o.items()))  # its lrs follow the run's losses: none to compute ahead
    try:
        lrs_of(name, o, ctx.lr or 1.0, ctx.calls + 1)  # torch's call after the last step computes an lr too
    except (ZeroDivisionError, OverflowError, ValueError) as exc:
        raise XregInputError(f"torch's {name} fails on this run ({ctx.calls} calls): {type(exc).__name__}: {exc}.") from None
    return tuple(sorted(o.items()))


def reads_loss(name: str) -> bool:
    """The scheduler sets the lr from the epoch's loss (ReduceLROnPlateau), not from its count."""
    return name in REGISTRY and REGISTRY[name].reads_loss


def make_twin(name: str, o: Mapping[str, Any], lr: float):
    group = {"lr": lr}
    return REGISTRY[name].twin(group, o)


def lrs_of(name: str, o: Mapping[str, Any], lr: float, calls: int) -> list[float]:
    """The lr after 0, 1, ..., calls-1 scheduler calls: torch's arithmetic, bit for bit (the twin)."""
    if name == CONSTANT:
        return [lr] * calls
    if reads_loss(name):
        raise ValueError(f"{name} sets the lr from the losses it is given (make_twin(...).step(loss)), not from its count.")
    twin = make_twin(name, o, lr)
    out = [twin.lr]
    for _ in range(calls - 1):
        twin.step()
        out.append(twin.lr)
    return out


def cycles_momentum(name: str, o: Mapping[str, Any]) -> bool:
    """The scheduler also moves the optimizer's momentum (OneCycleLR's and CyclicLR's cycle_momentum)."""
    return name in REGISTRY and REGISTRY[name].momentum is not None and bool(dict(o).get("cycle_momentum"))


def momentum_option(defaults: Mapping[str, Any]) -> str | None:
    """Which option torch's cycle_momentum moves for an optimizer with these torch defaults: beta1 of ``betas``
    where it has them, else ``momentum`` (torch: 'optimizer must support momentum or beta1'); None: neither."""
    return "betas" if "betas" in defaults else "momentum" if "momentum" in defaults else None


def momenta_of(name: str, o: Mapping[str, Any], calls: int) -> list[float]:
    """The momentum torch's scheduler sets after 0, 1, ..., calls-1 calls (the twin's arithmetic)."""
    twin = make_twin(name, o, 1.0)
    out = [twin.group["momentum"]]
    for _ in range(calls - 1):
        twin.step()
        out.append(twin.group["momentum"])
    return out


def momentum_code(name: str, o: Mapping[str, Any], ctx: Context) -> list[str]:
    """Lines defining ``momentum``, a function of optax's step count (per epoch: of the epoch), for a cycling scheduler."""
    lines = list(REGISTRY[name].momentum(o, ctx))
    if ctx.every == "epoch" and ctx.batches > 1:
        lines += ["momentum_per_epoch = momentum", f"momentum = lambda count: momentum_per_epoch(count // {ctx.batches})"]
    return lines


def torch_scheduler(name: str, o: Mapping[str, Any], optimizer: Any) -> Any:
    """The real ``torch.optim.lr_scheduler`` class on ``optimizer`` (None for 'constant')."""
    import torch

    if name == CONSTANT:
        return None
    if name == "SequentialLR":
        members = [torch_scheduler(m, dict(mo), optimizer) for m, mo in o["schedulers"]]
        return torch.optim.lr_scheduler.SequentialLR(optimizer, members, milestones=list(o["milestones"]))
    if name == "ChainedScheduler":
        members = [torch_scheduler(m, dict(mo), optimizer) for m, mo in o["schedulers"]]
        return torch.optim.lr_scheduler.ChainedScheduler(members, optimizer=optimizer)
    s = REGISTRY[name]
    return s.torch(optimizer, o) if s.torch is not None else getattr(torch.optim.lr_scheduler, name)(optimizer, **o)


def naive_of(name: str) -> Naive | None:
    return None if name == CONSTANT else REGISTRY[name].naive


def int32_float32(name: str, o: Mapping[str, Any]) -> bool:
    """Whether the optax schedule computes in float32 for optax's int32 count (its members' too)."""
    if name == CONSTANT:
        return False
    s = REGISTRY[name]
    if s.members:
        return any(int32_float32(m, dict(mo)) for m, mo in o["schedulers"])
    return s.int32_float32


def acting(name: str, o: Mapping[str, Any], ctx: Context, dtype: str) -> tuple[str, ...]:
    """The naive codes that change this run's learning rates (``o``: the run's options, :func:`for_run`)."""
    if name == CONSTANT:
        return ()
    out = []
    naive = naive_of(name)
    if naive is not None and naive.acts(o, ctx) and naive.cannot(o, ctx) is None:
        out.append(naive.code)
    if reads_loss(name):
        return tuple(out)
    if ctx.every == "epoch" and ctx.batches > 1 and len(set(lrs_of(name, o, ctx.lr or 1.0, min(ctx.calls, MAX_SEEN)))) > 1:
        out.append(EPOCH_COUNT)
    if dtype == "float64" and int32_float32(name, o):
        out.append(INT32_COUNT)
    if cycles_momentum(name, o):
        out.append(MOMENTUM_FIXED)
    return tuple(out)


def blocked(code: str, name: str, o: Mapping[str, Any] | None = None, ctx: Context | None = None) -> str | None:
    """Why the naive code cannot apply to the schedule ``name`` (with the run's options ``o``: to this run; None: it can)."""
    check_choice("naive_schedule", code, NAIVE_CODES)
    if code == MOMENTUM_FIXED:
        return None if name in ("OneCycleLR", "CyclicLR") else "only OneCycleLR's and CyclicLR's cycle_momentum moves the momentum"
    if code in (EPOCH_COUNT, INT32_COUNT):
        if reads_loss(name):
            return f"{name} reads the epoch's loss, not a count"
        return None if name != CONSTANT else "a constant learning rate has no schedule to port"
    naive = naive_of(name)
    if naive is None or naive.code != code:
        owner = next(s.name for s in REGISTRY.values() if s.naive and s.naive.code == code)
        return f"it is {owner}'s naive port, not {name}'s"
    return None if o is None else naive.cannot(o, ctx)


def naive_none(name: str, o: Mapping[str, Any], ctx: Context) -> str | None:
    """Why the class's naive port cannot be written for these options (None: it can, or the class has none)."""
    naive = naive_of(name)
    return None if naive is None else naive.cannot(o, ctx)


def cause_text(code: str, name: str, ctx: Context) -> str:
    if code == EPOCH_COUNT:
        return (f"torch steps {name} once per epoch; optax calls a schedule with its step count, so the ported schedule "
                f"runs {ctx.batches} times faster (count // {ctx.batches} is the epoch)")
    if code == INT32_COUNT:
        return INT32_COUNT_WHY
    if code == MOMENTUM_FIXED:
        return MOMENTUM_FIXED_WHY
    return naive_of(name).why


def code(name: str, o: Mapping[str, Any], ctx: Context, naive: tuple[str, ...] = ()) -> list[str]:
    """Python lines defining ``schedule``, a function of optax's step count, from ``lr`` (the exact port, or
    the naive one with the ``naive`` codes): what ``xreg translate`` prints and the JAX backend executes."""
    if name == CONSTANT:
        return ["schedule = optax.constant_schedule(lr)"]
    s = REGISTRY[name]
    own = s.naive is not None and s.naive.code in naive
    lines = list(s.naive.lines(o, ctx) if own else s.exact(o, ctx))
    if ctx.every == "epoch" and ctx.batches > 1 and EPOCH_COUNT not in naive and not s.reads_loss:
        lines += ["per_epoch = schedule",
                  f"schedule = lambda count: per_epoch(count // {ctx.batches})  # torch steps it once per epoch of {ctx.batches} batches"]  # fmt: skip
    return lines


def text(name: str, o: Mapping[str, Any]) -> str:
    """``Name(key=value, ...)`` as torch is called."""
    if name == CONSTANT:
        return "constant"
    parts = []
    for k, v in o.items() if isinstance(o, Mapping) else o:
        if k == "schedulers":
            shown = "[" + ", ".join(text(m, dict(mo)) for m, mo in v) + "]"
        else:
            shown = repr(list(v)) if isinstance(v, tuple) else num(v)
        parts.append(f"{k}={shown}")
    return f"{name}({', '.join(parts)})"


def execute(lines: list[str], lr: Any, defines: str = "schedule"):
    """Run schedule code with ``lr`` bound (a float or a traced array): the ``schedule`` (or ``momentum``) it defines."""
    return defined(lines, lr)[defines]


def defined(lines: list[str], lr: Any) -> dict[str, Any]:
    """Every name schedule code defines, run with ``lr`` bound (ReduceLROnPlateau's: plateau_init, plateau_step, plateau_lr)."""
    import math

    import jax.numpy as jnp
    import optax

    env: dict[str, Any] = {"optax": optax, "jnp": jnp, "math": math, "lr": lr}
    exec("\n".join(lines), env)  # noqa: S102 (xreg's own generated code, from checked options)
    return env


def table_text() -> str:
    """Every scheduler class, as ``xreg explain schedules`` prints it: torch's formula, how optax computes it
    exactly, and the naive port's difference; then the differences every class can have."""
    lines = ["torch lr schedulers: the lr after t scheduler calls, the exact optax schedule (xreg's twin where optax has "
             "none), and the optax schedule a porter writes first (--naive-schedule CODE runs one)"]
    for s in REGISTRY.values():
        exact = s.exact_note or f"its optax schedule, exact (xreg translate --from torch.{s.name} prints it)"
        lines += [f"{s.name}" + (f" (also '{s.alias}')" if s.alias else ""), f"  torch   {s.formula}", f"  optax   {exact}"]
        lines.append(f"  naive   {s.naive.code}: {s.naive.why}" if s.naive else "  naive   none: the optax form a porter writes is exact")
    lines += ["any class", f"  naive   {EPOCH_COUNT}: {EPOCH_COUNT_WHY}", f"  naive   {INT32_COUNT}: {INT32_COUNT_WHY}",
              f"  naive   {MOMENTUM_FIXED}: {MOMENTUM_FIXED_WHY}"]
    return "\n".join(lines)

