"""CyclicLR: a triangle between base_lr and max_lr, step_size_up calls up and step_size_down down; its height
scaled per cycle ('triangular': 1, 'triangular2': 1/2**(cycle-1)) or per call ('exp_range': gamma**t).
torch sets the optimizer's lr to base_lr (the optimizer's own lr is not read).

optax has no cyclic schedule: xreg's twin ``torch_cyclic`` (below) computes torch's triangle in jnp.
torch's cycle_momentum (its default) also cycles the optimizer's momentum (Adam's beta1) the other way, from
max_momentum down to base_momentum and back: ``torch_cyclic(..., of="momentum")``.
"""

from __future__ import annotations

import math

from xreg.core.checks import check_bool, check_choice, check_float
from xreg.schedules.base import LR, REQUIRED, Scheduler, Twin, count, num

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
        if self.o["cycle_momentum"]:  # torch sets the momentum in the same call
            mheight = (self.o["max_momentum"] - self.o["base_momentum"]) * factor
            self.group["momentum"] = self.o["max_momentum"] - mheight * _scale(self.o, cycle, t)
        return self.o["base_lr"] + height * _scale(self.o, cycle, t)


def torch_cyclic(base_lr, max_lr, step_size_up=2000, step_size_down=None, mode="triangular", gamma=1.0, base_momentum=0.8,
                 max_momentum=0.9, of="lr"):  # fmt: skip
    """torch's CyclicLR as an optax schedule (a function of the count), in torch's order of operations: the lr, or
    (``of="momentum"``) the momentum (Adam's beta1) torch's cycle_momentum sets beside it."""
    import jax.numpy as jnp

    o = {"base_lr": base_lr, "max_lr": max_lr, "step_size_up": step_size_up, "step_size_down": step_size_down, "mode": mode, "gamma": gamma}
    total, ratio = _sizes(o)

    def schedule(count):
        cycle = jnp.floor(1 + count / total)
        x = 1.0 + count / total - cycle
        factor = jnp.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
        if of == "momentum":
            return max_momentum - (max_momentum - base_momentum) * factor * _scale(o, cycle, count, jnp.power)
        return base_lr + (max_lr - base_lr) * factor * _scale(o, cycle, count, jnp.power)

    return schedule


def _args(o) -> str:
    return ", ".join(f"{k}={num(o[k])}" for k in ("base_lr", "max_lr", "step_size_up", "step_size_down", "mode", "gamma",
                                                  "base_momentum", "max_momentum"))  # fmt: skip


def _exact(o, ctx):
    return ["from xreg.schedules.cyclic import torch_cyclic  # optax has no cyclic schedule", f"schedule = torch_cyclic({_args(o)})"]


def _momentum(o, ctx):
    return ["from xreg.schedules.cyclic import torch_cyclic",
            f"momentum = torch_cyclic({_args(o)}, of='momentum')  # cycle_momentum: torch cycles it beside the lr"]


SCHEDULER = Scheduler(
    name="CyclicLR", formula="base_lr + (max_lr - base_lr)*triangle(t)*scale",
    defaults={"base_lr": LR, "max_lr": REQUIRED, "step_size_up": 2000, "step_size_down": None, "mode": "triangular",
              "gamma": 1.0, "cycle_momentum": True, "base_momentum": 0.8, "max_momentum": 0.9},
    checks={"base_lr": lambda k, v: check_float(k, v, 0.0, closed="neither"), "max_lr": lambda k, v: check_float(k, v, 0.0, closed="neither"),
            "step_size_up": count,
            "step_size_down": lambda k, v: None if v is None else count(k, v),
            "mode": lambda k, v: check_choice(k, v, MODES), "gamma": lambda k, v: check_float(k, v, 0.0, closed="neither"),
            "cycle_momentum": lambda k, v: check_bool(k, v),
            "base_momentum": lambda k, v: check_float(k, v, 0.0, 1.0, closed="left"),
            "max_momentum": lambda k, v: check_float(k, v, 0.0, 1.0, closed="left")},
    twin=CyclicTwin, exact=_exact, momentum=_momentum,
    exact_note="xreg's twin: optax has no cyclic schedule",
)  # fmt: skip
