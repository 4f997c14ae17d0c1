"""ConstantLR: lr_t = lr * factor for t < total_iters, then lr (torch: times factor at t = 0, times 1/factor at
t = total_iters).

optax: ``piecewise_constant_schedule(lr * factor, {total_iters: 1 / factor})``: the same two roundings.
"""

from __future__ import annotations

from xreg.core.checks import check_float
from xreg.schedules.base import Scheduler, Twin, count, num


class ConstantTwin(Twin):
    def get_lr(self) -> float:
        if self.last_epoch == 0:
            return self.group["lr"] * self.o["factor"]
        if self.last_epoch != self.o["total_iters"]:
            return self.group["lr"]
        return self.group["lr"] * (1.0 / self.o["factor"])

    def closed_form(self) -> float:
        f = self.o["factor"]
        return self.base_lr * (f + (self.last_epoch >= self.o["total_iters"]) * (1 - f))


def _exact(o, ctx):
    return [f"schedule = optax.piecewise_constant_schedule(lr * {num(o['factor'])}, {{{o['total_iters']}: 1.0 / {num(o['factor'])}}})"]


SCHEDULER = Scheduler(
    name="ConstantLR", formula="lr*factor for t < total_iters, then lr",
    defaults={"factor": 1.0 / 3, "total_iters": 5},
    # factor 0: torch divides by it at total_iters (ZeroDivisionError); total_iters 0: its two forms disagree
    checks={"factor": lambda k, v: check_float(k, v, 0.0, 1.0, closed="right"), "total_iters": count},
    twin=ConstantTwin, exact=_exact,
)  # fmt: skip
