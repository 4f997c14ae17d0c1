"""CyclicLR: a triangle between base_lr and max_lr, step_size_up calls up and step_size_down down; its height
scaled per cycle ('triangular': 1, 'triangular2': 1/2**(cycle-1)) or per call ('exp_range': gamma**t).
torch sets the optimizer's lr to base_lr (the optimizer's own lr is not read).

optax has no cyclic schedule: xreg's twin ``torch_cyclic`` (below) computes torch's triangle in jnp.
torch's cycle_momentum (its default) also cycles the optimizer's momentum; xreg refuses it for now.
"""

from __future__ import annotations

import math

from xreg.core.checks import XregInputError, check_bool, check_choice, check_float
from xreg.schedules.base import LR, REQUIRED, Scheduler, Twin, count, num
from xreg.schedules.onecycle import CYCLE_MOMENTUM

MODES = ("triangular", "triangular2", "exp_range")


def _scale(o, cycle, t, pow_=pow):
    if o["mode"] == "triangular":
        return 1.0
    if o["mode"] == "triangular2":
        return 1 / pow_(2.0, cycle - 1)
    return pow_(o["gamma"], t)  # exp_range scales by the call count


def _sizes(o) -> tuple[float, float]:
    up = float(o["step_size_up"])
    down = float(o["step_size_down"]) if o["step_size_down"] is not None else up
    total = up + down
    return total, up / total


class CyclicTwin(Twin):
    def __init__(self, group, o):
        group["lr"] = o["base_lr"]
        super().__init__(group, o)
        self.base_lr = o["base_lr"]

    def get_lr(self) -> float:
        t, (total, ratio) = self.last_epoch, _sizes(self.o)
        cycle = math.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        factor = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        height = (self.o["max_lr"] - self.o["base_lr"]) * factor
        return self.o["base_lr"] + height * _scale(self.o, cycle, t)


def torch_cyclic(base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular", gamma=1.0):
    """torch's CyclicLR as an optax schedule (a function of the count), in torch's order of operations."""
    import jax.numpy as jnp

    o = {"base_lr": base_lr, "max_lr": max_lr, "step_size_up": step_size_up, "step_size_down": step_size_down, "mode": mode, "gamma": gamma}
    total, ratio = _sizes(o)

    def schedule(count):
        cycle = jnp.floor(1 + count / total)
        x = 1.0 + count / total - cycle
        factor = jnp.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
        return base_lr + (max_lr - base_lr) * factor * _scale(o, cycle, count, jnp.power)

    return schedule


def _torch(opt, o):
    import torch

    keys = ("base_lr", "max_lr", "step_size_up", "step_size_down", "mode", "gamma", "cycle_momentum")
    return torch.optim.lr_scheduler.CyclicLR(opt, **{k: o[k] for k in keys})


def _exact(o, ctx):
    args = ", ".join(f"{k}={num(o[k])}" for k in ("base_lr", "max_lr", "step_size_up", "step_size_down", "mode", "gamma"))
    return ["from xreg.schedules.cyclic import torch_cyclic  # optax has no cyclic schedule", f"schedule = torch_cyclic({args})"]


def _validate(o, ctx):
    if o["cycle_momentum"]:
        raise XregInputError(f"CyclicLR's {CYCLE_MOMENTUM}.")


SCHEDULER = Scheduler(
    name="CyclicLR", formula="base_lr + (max_lr - base_lr)*triangle(t)*scale",
    defaults={"base_lr": LR, "max_lr": REQUIRED, "step_size_up": 2000, "step_size_down": None, "mode": "triangular",
              "gamma": 1.0, "cycle_momentum": True},
    checks={"base_lr": lambda k, v: check_float(k, v, 0.0, closed="neither"), "max_lr": lambda k, v: check_float(k, v, 0.0, closed="neither"),
            "step_size_up": lambda k, v: count(k, v),
            "step_size_down": lambda k, v: None if v is None else count(k, v),
            "mode": lambda k, v: check_choice(k, v, MODES), "gamma": lambda k, v: check_float(k, v, 0.0, closed="neither"),
            "cycle_momentum": lambda k, v: check_bool(k, v)},
    twin=CyclicTwin, torch=_torch, exact=_exact, validate=_validate,
    exact_note="xreg's twin: optax has no cyclic schedule",
)  # fmt: skip
