"""``xreg translate --from torch.StepLR --option step_size=30``: one torch lr scheduler as the exact optax
schedule (xreg's twin where optax has none), the naive optax schedule a porter writes first and each
difference, named (:data:`xreg.schedules.NAIVE_CODES`).

The optax code pastes and runs: it defines ``schedule``, a function of optax's step count, after
:data:`IMPORTS` and ``lr = <the lr>``; the tests execute it beside torch's class.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from xreg import schedules
from xreg.core.checks import XregInputError, check_choice, check_float, check_int
from xreg.schedules import Context

IMPORTS = "import jax.numpy as jnp\nimport optax"
SOURCE = re.compile(r"(?:torch\.(?:optim\.)?(?:lr_scheduler\.)?)?([A-Za-z]+)")
MAX_CALLS = 1_000_000


def scheduler_of(source: str) -> str | None:
    """The torch class ``source`` names (torch.StepLR, torch.optim.lr_scheduler.StepLR, StepLR), or None."""
    m = SOURCE.fullmatch(source.strip())
    if m is None:
        return None
    lower = {n.lower(): n for n in schedules.REGISTRY}
    return lower.get(m.group(1).lower())


@dataclass
class ScheduleTranslation:
    source: str
    options: dict[str, Any]
    every: str
    calls: int
    torch_code: str
    optax_code: str  # after IMPORTS and lr = ...: defines schedule(count)
    naive_code: str
    momentum_code: str = ""  # cycle_momentum: defines momentum(count), the momentum or beta1 torch sets beside the lr
    differs: list[str] = field(default_factory=list)  # naive codes that act
    why: dict[str, str] = field(default_factory=dict)
    lr: float = 0.05
    reads_loss: bool = False  # ReduceLROnPlateau: the code defines plateau_init, plateau_step and plateau_lr, not schedule
    naive_none: str = ""  # why the naive port cannot be written for these options ('' : it can)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        if self.reads_loss:
            return self._plateau_text()
        step = "once per epoch" if self.every == "epoch" else "after every optimizer.step()"
        out = ["torch:", f"  scheduler = {self.torch_code}  # scheduler.step() {step}, {self.calls} calls",
               f"optax (exact; after {IMPORTS.replace(chr(10), '; ')}; lr = {self.lr!r}):", *_indent(self.optax_code),
               "  learning_rate = lambda count: schedule(jnp.asarray(count, jnp.float64))  # an optax optimizer's learning_rate: "
               "with x64 on, a float64 count keeps a float64 lr (optax's own count is int32)",
               *(["optax has no momentum schedule; torch's cycle_momentum moves the momentum (Adam's beta1) beside the lr:",
                  *_indent(self.momentum_code), "  (optax.inject_hyperparams around the optimizer: its momentum hyperparameter set "
                  "to momentum(count) before each step)"] if self.momentum_code else []),
               "optax naive port (torch's numbers copied into the optax schedule a porter writes first):", *_indent(self.naive_code)]  # fmt: skip
        out += [f"  differs: {c}: {self.why[c]}" for c in self.differs] or ["  differs: nothing"]
        return "\n".join(out)

    def _plateau_text(self) -> str:
        use = ["  # the optimizer built as optax.inject_hyperparams(optax.<optimizer>)(learning_rate=lr, ...); then",
               "  state = plateau_init(lr)  # before the loop",
               "  state = plateau_step(state, epoch_loss)  # after each epoch, as torch's scheduler.step(epoch_loss)",
               "  opt_state.hyperparams['learning_rate'] = plateau_lr(state)  # the lr of the next epoch"]
        out = ["torch:", f"  scheduler = {self.torch_code}  # scheduler.step(epoch_loss) once per epoch, {self.calls} calls",
               f"optax (exact: xreg's twin of torch's arithmetic; after {IMPORTS.replace(chr(10), '; ')}; lr = {self.lr!r}):",
               *_indent(self.optax_code), *use,
               "optax naive port (torch's numbers copied into optax.contrib.reduce_on_plateau, used the same way):"]  # fmt: skip
        if self.naive_none:
            return "\n".join([*out, f"  none: {self.naive_none}"])
        out += _indent(self.naive_code)
        out += [f"  differs: {c}: {self.why[c]}" for c in self.differs] or ["  differs: nothing"]
        return "\n".join(out)


def _indent(code: str) -> list[str]:
    return [f"  {ln}" for ln in code.splitlines()]


def _torch_code(name: str, o: Mapping[str, Any]) -> str:
    def args(n, oo):
        if "expr" in oo:  # LambdaLR, MultiplicativeLR: torch takes the function
            return f"lr_lambda=lambda epoch: {oo['expr']}"
        return ", ".join(f"{k}={list(v) if isinstance(v, tuple) else schedules.num(v)}" for k, v in oo.items())

    if schedules.REGISTRY[name].members:
        members = ", ".join(f"torch.optim.lr_scheduler.{m}(optimizer, {args(m, dict(mo))})" for m, mo in o["schedulers"])
        rest = f", milestones={list(o['milestones'])}" if "milestones" in o else ""
        head = "optimizer, " if name == "SequentialLR" else ""
        return f"torch.optim.lr_scheduler.{name}({head}[{members}]{rest})"
    return f"torch.optim.lr_scheduler.{name}(optimizer, {args(name, o)})"


def translate_schedule(source: str, options: Mapping[str, Any], lr: float | None = None, every: str = "epoch",
                       calls: int | None = None, batches: int = 1, dtype: str = "float64") -> ScheduleTranslation:  # fmt: skip
    """The translation of ``torch.<source>(optimizer, **options)`` stepped ``calls`` times (per epoch of
    ``batches`` optimizer steps, or per step)."""
    name = scheduler_of(source)
    if name is None:
        raise XregInputError(f"--from takes a torch lr scheduler, one of: {', '.join('torch.' + n for n in schedules.REGISTRY)}; got {source!r}.")
    lr = check_float("lr", 0.05 if lr is None else lr, 0.0, closed="neither")
    every = check_choice("schedule_every", every, schedules.EVERY)
    calls = check_int("calls", 100 if calls is None else calls, 1, MAX_CALLS)
    batches = check_int("batches", batches, 1, MAX_CALLS)
    ctx = Context(calls, batches if every == "epoch" else 1, every, lr)
    o = dict(schedules.for_run(name, schedules.resolve(name, dict(options)), ctx))
    acting = [c for c in schedules.acting(name, o, ctx, dtype) if c != schedules.INT32_COUNT]
    return ScheduleTranslation(
        source=f"torch.optim.lr_scheduler.{name}", options=o, every=every, calls=calls, lr=lr,
        torch_code=_torch_code(name, o),
        optax_code="\n".join(schedules.code(name, o, ctx)),
        naive_code="\n".join(schedules.code(name, o, ctx, tuple(acting))),
        momentum_code="\n".join(schedules.momentum_code(name, o, ctx)) if schedules.cycles_momentum(name, o) else "",
        differs=[*acting, *((schedules.INT32_COUNT,) if schedules.INT32_COUNT in schedules.acting(name, o, ctx, dtype) else ())],
        why={c: schedules.cause_text(c, name, ctx) for c in schedules.acting(name, o, ctx, dtype)},
        reads_loss=schedules.reads_loss(name), naive_none=schedules.naive_none(name, o, ctx) or "",
    )  # fmt: skip
