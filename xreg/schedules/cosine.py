"""CosineAnnealingLR: lr_t = eta_min + (lr - eta_min) * (1 + cos(pi * t / T_max)) / 2, periodic past T_max
(torch's chainable form: each call rescales the current lr by the ratio of two cosines).

optax: ``cosine_decay_schedule(lr, decay_steps=T_max, alpha=eta_min / lr)`` (alpha is a *fraction* of lr;
it holds eta_min after T_max, so a run longer than T_max + 1 calls takes the periodic form). The port
that copies the numbers passes ``decay_steps`` = the run's last count (calls - 1, "so the last step ends at
the minimum") and ``alpha=eta_min``.
"""

from __future__ import annotations

import math

from xreg.core.checks import check_float
from xreg.schedules.base import CALLS, Naive, Scheduler, Twin, count, num


class CosineTwin(Twin):
    def get_lr(self) -> float:
        t, T, e = self.last_epoch, self.o["T_max"], self.o["eta_min"]
        if self._is_initial:
            return self.group["lr"]
        if self._step_count == 1 and t > 0:
            return e + (self.base_lr - e) * (1 + math.cos(t * math.pi / T)) / 2
        if (t - 1 - T) % (2 * T) == 0:
            return self.group["lr"] + (self.base_lr - e) * (1 - math.cos(math.pi / T)) / 2
        return (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (self.group["lr"] - e) + e

    def closed_form(self) -> float:
        e = self.o["eta_min"]
        return e + (self.base_lr - e) * (1 + math.cos(math.pi * self.last_epoch / self.o["T_max"])) / 2


def _alpha(o) -> str:
    return "0.0" if o["eta_min"] == 0 else f"{num(o['eta_min'])} / lr"


def _exact(o, ctx):
    T, e = o["T_max"], o["eta_min"]
    if ctx.calls - 1 <= T:
        return [f"schedule = optax.cosine_decay_schedule(lr, decay_steps={T}, alpha={_alpha(o)})"]
    return [f"schedule = lambda count: {num(e)} + (lr - {num(e)}) * (1 + jnp.cos(jnp.pi * count / {T})) / 2"
            "  # past T_max torch's cosine rises again; optax's holds alpha*lr"]  # fmt: skip


def _naive(o, ctx):
    return [f"schedule = optax.cosine_decay_schedule(lr, decay_steps={max(1, ctx.calls - 1)}, alpha={num(o['eta_min'])})"]


SCHEDULER = Scheduler(
    name="CosineAnnealingLR", alias="cosine", formula="eta_min + (lr - eta_min)*(1 + cos(pi*t/T_max))/2",
    defaults={"T_max": CALLS, "eta_min": 0.0},
    checks={"T_max": count, "eta_min": lambda k, v: check_float(k, v, 0.0)},
    twin=CosineTwin, exact=_exact,
    exact_note="the closed form of torch's chainable ratios (1.5e-15 relative after 500 calls)",
    naive=Naive("cosine-decay-steps", "optax.cosine_decay_schedule given decay_steps = the run's last count (calls - 1) "
                "where torch divides by T_max, and alpha = eta_min where optax's alpha is a fraction of lr "
                "(torch's eta_min is the lr itself)", _naive,
                acts=lambda o, ctx: ctx.calls > 1 and (ctx.calls - 1 != o["T_max"] or o["eta_min"] != 0)),
)  # fmt: skip
