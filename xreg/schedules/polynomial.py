"""PolynomialLR: lr_t = lr * (1 - min(t, total_iters) / total_iters)**power (torch's chainable form: each
call multiplies by ((1 - t/T) / (1 - (t-1)/T))**power).

optax: ``polynomial_schedule(lr, 0.0, power, transition_steps=total_iters)``.
"""

from __future__ import annotations

from xreg.core.checks import check_float
from xreg.schedules.base import Scheduler, Twin, count, num


class PolynomialTwin(Twin):
    def get_lr(self) -> float:
        t, T = self.last_epoch, self.o["total_iters"]
        if self._is_initial or t > T:
            return self.group["lr"]
        return self.group["lr"] * ((1.0 - t / T) / (1.0 - (t - 1) / T)) ** self.o["power"]

    def closed_form(self) -> float:
        T = self.o["total_iters"]
        return self.base_lr * (1.0 - min(T, self.last_epoch) / T) ** self.o["power"]


def _exact(o, ctx):
    return [f"schedule = optax.polynomial_schedule(lr, 0.0, power={num(o['power'])}, transition_steps={o['total_iters']})"]


SCHEDULER = Scheduler(
    name="PolynomialLR", formula="lr*(1 - min(t, total_iters)/total_iters)**power",
    defaults={"total_iters": 5, "power": 1.0},
    checks={"total_iters": count, "power": lambda k, v: check_float(k, v, 0.0, closed="neither")},
    twin=PolynomialTwin, exact=_exact, int32_float32=True,
    exact_note="the closed form of torch's chainable ratios",
)  # fmt: skip
