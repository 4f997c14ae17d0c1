"""ReduceLROnPlateau: the lr times factor once the loss it is given has not improved for more than patience calls.

torch's loop calls ``scheduler.step(loss)`` once per epoch; xreg gives it the epoch's recorded loss, the
whole training set's mean data loss in eval mode at the parameters after the epoch's last step (the loss
the report shows per epoch). A call improves when ``loss < best * (1 - threshold)`` ('rel') or
``loss < best - threshold`` ('abs'); after more than ``patience`` calls without improvement the lr becomes
``max(lr * factor, min_lr)`` (kept where that changes it by ``eps`` or less), and ``cooldown`` calls follow
in which bad calls are not counted. Only ``mode='min'``: xreg gives it a loss.

optax has no exact form. ``optax.contrib.reduce_on_plateau`` (a transformation that scales the updates) reduces
once its count of bad calls *equals* patience, one call before torch (torch's ``num_bad_epochs > patience``),
and has no ``eps``: the port that copies torch's patience reduces one epoch early. xreg's twin (below: torch's
arithmetic in jnp, its state carried through the run) is exact; ``contrib.reduce_on_plateau(patience=p + 1, ...)``
matches it until a reduction would change the lr by ``eps`` or less.
"""

from __future__ import annotations

import math

from xreg.core.checks import XregInputError, check_choice, check_float, check_int
from xreg.schedules.base import Naive, Scheduler, num


class PlateauTwin:
    """``torch.optim.lr_scheduler.ReduceLROnPlateau`` for one param group, in Python floats: ``step(loss)``."""

    def __init__(self, group: dict, o):
        self.group, self.o = group, o
        self.best, self.num_bad_epochs, self.cooldown_counter, self.last_epoch = math.inf, 0, 0, 0

    @property
    def lr(self) -> float:
        return self.group["lr"]

    def _is_better(self, a: float) -> bool:
        if self.o["threshold_mode"] == "rel":
            return a < self.best * (1.0 - self.o["threshold"])
        return a < self.best - self.o["threshold"]

    def step(self, metrics: float) -> None:
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.o["patience"]:
            old = float(self.group["lr"])
            new = max(old * self.o["factor"], self.o["min_lr"])
            if old - new > self.o["eps"]:
                self.group["lr"] = new
            self.cooldown_counter, self.num_bad_epochs = self.o["cooldown"], 0


def _better(o) -> str:
    if o["threshold_mode"] == "rel":
        return f"loss < state['best'] * {num(1.0 - o['threshold'])}"
    return f"loss < state['best'] - {num(o['threshold'])}"


def _exact(o, ctx) -> list[str]:
    """``plateau_init(lr)``, ``plateau_step(state, loss)`` (torch's ``scheduler.step(loss)``) and ``plateau_lr(state)``, in jnp."""
    return [
        "def plateau_init(lr):  # torch's ReduceLROnPlateau, its state carried through the run",
        "    return {'lr': jnp.asarray(lr, jnp.float64), 'best': jnp.asarray(jnp.inf, jnp.float64),",
        "            'bad': jnp.asarray(0, jnp.int32), 'cooldown': jnp.asarray(0, jnp.int32)}",
        "",
        "def plateau_step(state, loss):  # scheduler.step(loss), once per epoch",
        "    loss = jnp.asarray(loss, jnp.float64)",
        f"    better = {_better(o)}",
        "    best = jnp.where(better, loss, state['best'])",
        "    bad = jnp.where(better, 0, state['bad'] + 1)",
        "    cooling = state['cooldown'] > 0",
        "    cooldown = jnp.where(cooling, state['cooldown'] - 1, state['cooldown'])",
        "    bad = jnp.where(cooling, 0, bad)",
        f"    reduce = bad > {o['patience']}",
        f"    new_lr = jnp.maximum(state['lr'] * {num(o['factor'])}, {num(o['min_lr'])})",
        f"    lr = jnp.where(reduce & (state['lr'] - new_lr > {num(o['eps'])}), new_lr, state['lr'])",
        "    return {'lr': lr, 'best': best, 'bad': jnp.where(reduce, 0, bad).astype(jnp.int32),",
        f"            'cooldown': jnp.where(reduce, {o['cooldown']}, cooldown).astype(jnp.int32)}}",
        "",
        "plateau_lr = lambda state: state['lr']",
    ]


def _tolerances(o) -> str:
    th = num(o["threshold"])
    return f"rtol={th}, atol=0.0" if o["threshold_mode"] == "rel" else f"rtol=0.0, atol={th}"


def _naive(o, ctx) -> list[str]:
    """optax.contrib.reduce_on_plateau with torch's numbers, called once per epoch with the epoch's loss (lr * its scale)."""
    min_scale = "0.0" if o["min_lr"] == 0 else f"{num(o['min_lr'])} / lr"
    return [
        f"plateau = optax.contrib.reduce_on_plateau(factor={num(o['factor'])}, patience={o['patience']}, {_tolerances(o)}, "
        f"cooldown={o['cooldown']}, min_scale={min_scale})",
        "plateau_init = lambda lr: (jnp.asarray(lr, jnp.float64), plateau.init(jnp.zeros([], jnp.float64)))",
        "plateau_step = lambda state, loss: (state[0], plateau.update({}, state[1], value=jnp.asarray(loss, jnp.float64))[1])",
        "plateau_lr = lambda state: state[0] * state[1].scale",
    ]


def _cannot(o, ctx) -> str | None:
    """Where optax.contrib.reduce_on_plateau refuses torch's numbers, or differs from torch by more than its patience."""
    if o["threshold"] == 0:
        return "optax.contrib.reduce_on_plateau refuses rtol = atol = 0 (torch's threshold=0)"
    if o["factor"] == 0:
        return "optax.contrib.reduce_on_plateau refuses factor=0 (it takes factors in (0, 1))"
    if ctx is not None and ctx.lr is not None and o["min_lr"] > ctx.lr:
        return (f"min_lr {o['min_lr']:g} is above the lr {ctx.lr:g}: optax's min_scale > 1 raises the lr at its first call, "
                "where torch keeps it (a second difference beside the patience)")
    return None


def _validate(o, ctx) -> None:
    if o["threshold_mode"] == "rel" and o["threshold"] >= 1:
        raise XregInputError(f"ReduceLROnPlateau's relative threshold must be below 1 (best * (1 - threshold)); got {o['threshold']!r}.")
    if ctx.every != "epoch":
        raise XregInputError("ReduceLROnPlateau reads the epoch's loss: it is stepped once per epoch (drop --schedule-every step).")


def _mode(k, v):
    check_choice(k, v, ("min", "max"))
    if v != "min":
        raise XregInputError("ReduceLROnPlateau is given the epoch's loss, which falls as the run improves: mode must be 'min'.")
    return v


def _min_lr(k, v):
    if isinstance(v, (list, tuple)):
        raise XregInputError("ReduceLROnPlateau's min_lr must be one number here (xreg's runs have one lr for every group).")
    return check_float(k, v, 0.0)


PLATEAU = Scheduler(
    name="ReduceLROnPlateau", alias=None,
    formula="lr * factor once the loss given has not improved (loss < best*(1 - threshold), or best - threshold with "
            "threshold_mode='abs') for more than patience calls; then cooldown calls uncounted; at least min_lr",
    defaults={"mode": "min", "factor": 0.1, "patience": 10, "threshold": 1e-4, "threshold_mode": "rel", "cooldown": 0,
              "min_lr": 0.0, "eps": 1e-8},
    checks={"mode": _mode, "factor": lambda k, v: check_float(k, v, 0.0, 1.0, closed="left"),  # torch: factor < 1
            "patience": lambda k, v: check_int(k, v, 0, 10**9), "threshold": lambda k, v: check_float(k, v, 0.0),
            "threshold_mode": lambda k, v: check_choice(k, v, ("rel", "abs")), "cooldown": lambda k, v: check_int(k, v, 0, 10**9),
            "min_lr": _min_lr, "eps": lambda k, v: check_float(k, v, 0.0)},
    twin=PlateauTwin, exact=_exact, validate=_validate, reads_loss=True,
    exact_note="none in optax (contrib.reduce_on_plateau reduces one call early and has no eps): xreg's twin in jnp, "
               "called with the epoch's loss (xreg translate --from torch.ReduceLROnPlateau prints it)",
    naive=Naive("plateau-patience", "optax.contrib.reduce_on_plateau given torch's patience reduces once its bad calls "
                "equal patience, where torch's ReduceLROnPlateau waits for more than patience (give it patience + 1)",
                _naive, acts=lambda o, ctx: ctx.calls > o["patience"] + 1,  # optax's first cut (call patience + 1) reaches an epoch
                cannot=lambda o, ctx: _cannot(o, ctx)),
)  # fmt: skip
