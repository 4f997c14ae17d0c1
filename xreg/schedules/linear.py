"""LinearLR: lr_t = lr * (start_factor + (end_factor - start_factor) * min(t, total_iters) / total_iters)
(torch's chainable form: each call multiplies by the ratio of consecutive factors).

optax: ``linear_schedule(lr * start_factor, lr * end_factor, transition_steps=total_iters)``. The port of a
warm-up that starts optax's line at 0 (``init_value=0.0``) begins below torch's lr * start_factor.
"""

from __future__ import annotations

from xreg.core.checks import check_float
from xreg.schedules.base import Naive, Scheduler, Twin, count, num


class LinearTwin(Twin):
    def get_lr(self) -> float:
        t, s, e, T = self.last_epoch, self.o["start_factor"], self.o["end_factor"], self.o["total_iters"]
        if t == 0:
            return self.group["lr"] * s
        if self._is_initial or t > T:
            return self.group["lr"]
        return self.group["lr"] * (1.0 + (e - s) / (T * s + (t - 1) * (e - s)))

    def closed_form(self) -> float:
        s, e, T = self.o["start_factor"], self.o["end_factor"], self.o["total_iters"]
        return self.base_lr * (s + (e - s) * min(T, self.last_epoch) / T)


def _exact(o, ctx):
    return [f"schedule = optax.linear_schedule(lr * {num(o['start_factor'])}, lr * {num(o['end_factor'])}, transition_steps={o['total_iters']})"]


def _naive(o, ctx):
    return [f"schedule = optax.linear_schedule(0.0, lr * {num(o['end_factor'])}, transition_steps={o['total_iters']})"]


SCHEDULER = Scheduler(
    name="LinearLR", formula="lr*(start_factor + (end_factor - start_factor)*min(t, total_iters)/total_iters)",
    defaults={"start_factor": 1.0 / 3, "end_factor": 1.0, "total_iters": 5},
    checks={"start_factor": lambda k, v: check_float(k, v, 0.0, 1.0, closed="right"),
            "end_factor": lambda k, v: check_float(k, v, 0.0, 1.0), "total_iters": count},
    twin=LinearTwin, exact=_exact, int32_float32=True,
    exact_note="the closed form of torch's chainable ratios",
    naive=Naive("warmup-start", "the warm-up's first value: optax.linear_schedule from 0.0, where torch's LinearLR starts at "
                "lr*start_factor (start_factor > 0)", _naive),
)  # fmt: skip
