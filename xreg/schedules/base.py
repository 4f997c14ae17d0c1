"""The schema of one torch scheduler class, and torch's scheduler machinery written in Python floats.

A :class:`Scheduler` states, once, everything xreg knows about one ``torch.optim.lr_scheduler`` class:
its torch-named options and defaults, their checks, the real class built on an optimizer (``torch``: by
default the class of that name with the options as its keyword arguments),
a twin of torch's own arithmetic (``twin``: the same Python-float operations in the same order, so the
NumPy backend's learning rates are torch's, bit for bit), the exact optax schedule (``exact``: code that
defines ``schedule``, a function of the count, from ``lr``; it is both printed by ``xreg translate`` and
executed by the JAX backend) and the naive optax schedule a porter writes first (``naive``), with the
difference named.

:class:`Twin` is torch's ``LRScheduler`` for one param group (``group['lr']``, ``group['initial_lr']``):
the initial step at construction, ``last_epoch``, ``_is_initial`` and ``_step_count`` as torch keeps them,
``step()`` calling ``get_lr()`` and ``_update_lr(0)`` (SequentialLR's restart) calling the closed form.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

REQUIRED = object()  # an option torch requires
CALLS = "calls"  # an option whose xreg default is the number of scheduler calls of the run (torch requires it)
LR = "lr"  # an option whose xreg default is the run's --lr (torch requires it)


class Twin:
    """``torch.optim.lr_scheduler.LRScheduler`` for one param group, in Python floats."""

    closed_form: Callable[[], float] | None = None

    def __init__(self, group: dict, o: Mapping[str, Any]):
        self.group, self.o = group, o
        group.setdefault("initial_lr", group["lr"])
        self.base_lr = group["initial_lr"]
        self.last_epoch = -1
        self._initial_step()

    def _initial_step(self) -> None:
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def step(self) -> None:
        self._step_count += 1
        self._update_lr()

    def _update_lr(self, epoch: int | None = None) -> None:
        if epoch is None:
            self.last_epoch += 1
            value = self.get_lr()
        else:
            self.last_epoch = epoch
            value = self.closed_form() if self.closed_form is not None else self.get_lr()
        self.group["lr"] = value

    @property
    def lr(self) -> float:
        return self.group["lr"]

    def get_lr(self) -> float:
        raise NotImplementedError


@dataclass(frozen=True)
class Naive:
    """The optax schedule a porter writes first, copying torch's numbers: ``code(o)`` defines ``schedule``
    as ``exact`` does; ``acts(o, ctx)`` whether it differs from torch's here; ``why`` the difference."""

    code: str  # the cause code ('staircase')
    why: str
    lines: Callable[[Mapping[str, Any], "Context"], list[str]]
    acts: Callable[[Mapping[str, Any], "Context"], bool] = lambda o, ctx: True
    # why the port cannot be written for these options (the optax function refuses them, or a second difference
    # would act beside ``code``); None: it can
    cannot: Callable[[Mapping[str, Any], "Context"], str | None] = lambda o, ctx: None


@dataclass(frozen=True)
class Context:
    """What a schedule's defaults and checks read of the run: the scheduler calls it makes (epochs, or
    optimizer steps with ``--schedule-every step``), the batches of an epoch and the run's base lr."""

    calls: int
    batches: int = 1
    every: str = "epoch"
    lr: float | None = None  # the run's --lr (None where the options that default to it are filled already)


@dataclass(frozen=True)
class Scheduler:
    name: str  # the torch class name, also xreg's ('CosineAnnealingLR')
    formula: str  # lr at the scheduler's count t, in words
    defaults: Mapping[str, Any]  # torch-named options: torch's default, REQUIRED, CALLS or LR
    checks: Mapping[str, Callable[[str, Any], Any]]
    twin: type[Twin]
    exact: Callable[[Mapping[str, Any], Context], list[str]]  # code lines defining ``schedule`` from ``lr``
    naive: Naive | None = None
    alias: str | None = None  # the name xreg used before the torch class names ('cosine')
    validate: Callable[[Mapping[str, Any], Context], None] | None = None  # checks that need the run
    int32_float32: bool = False  # its optax schedule computes in float32 for optax's int32 count (x64 on)
    exact_note: str = ""  # how the exact optax schedule relates to torch's numbers
    members: bool = False  # it composes other schedulers (SequentialLR, ChainedScheduler)
    # (torch optimizer, options) -> the real scheduler; None: torch's class of this name, the options as its keywords
    torch: Callable[[Any, Mapping[str, Any]], Any] | None = None
    # cycle_momentum: code lines defining ``momentum`` (a function of the count): the momentum or beta1 torch sets beside the lr
    momentum: Callable[[Mapping[str, Any], Context], list[str]] | None = None
    # it sets the lr from the loss it is given once per epoch (ReduceLROnPlateau), not from its count: ``exact`` and
    # the naive lines define plateau_init(lr), plateau_step(state, loss) and plateau_lr(state) instead of ``schedule``
    reads_loss: bool = False
    doc: str = field(default="", compare=False)


MAX_COUNT = 2**31 - 1  # optax's count is an int32: a step size, milestone or span beyond it is no schedule


def count(key: str, value: Any) -> int:
    """A whole number of scheduler calls, 1 to :data:`MAX_COUNT`."""
    from xreg.core.checks import check_int

    return check_int(key, value, 1, MAX_COUNT)


def num(v: Any) -> str:
    """A number as Python code (repr: the value read back is the value)."""
    return repr(float(v)) if isinstance(v, float) else repr(v)
