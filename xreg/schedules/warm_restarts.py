"""CosineAnnealingWarmRestarts: lr_t = eta_min + (lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2, where
T_cur counts the calls since the last restart and the i-th cycle lasts T_i = T_0 * T_mult**i calls.

optax: ``join_schedules`` of one ``cosine_decay_schedule(lr, T_i, alpha=eta_min / lr)`` per cycle (what
``sgdr_schedule`` builds, without its warm-up pieces); with T_mult 1 the cycles are ``count % T_0``. The
port that repeats T_0-long cycles drops T_mult.
"""

from __future__ import annotations

import math

from xreg.core.checks import check_float
from xreg.schedules.base import Naive, REQUIRED, Scheduler, Twin, count, num


class WarmRestartsTwin(Twin):
    def __init__(self, group, o):
        self.T_i, self.T_cur = o["T_0"], -1
        super().__init__(group, o)

    def step(self) -> None:  # torch's own step(): T_cur and T_i move, then get_lr
        if self.last_epoch < 0:
            epoch = 0
            self.T_i, self.T_cur = self.o["T_0"], 0
        else:
            epoch = self.last_epoch + 1
            self.T_cur = self.T_cur + 1
            if self.T_cur >= self.T_i:
                self.T_cur = self.T_cur % self.T_i
                self.T_i = self.T_i * self.o["T_mult"]
        self.last_epoch = math.floor(epoch)
        self.group["lr"] = self.get_lr()

    def get_lr(self) -> float:
        e = self.o["eta_min"]
        return e + (self.base_lr - e) * (1 + math.cos(math.pi * self.T_cur / self.T_i)) / 2


def _alpha(o) -> str:
    return "0.0" if o["eta_min"] == 0 else f"{num(o['eta_min'])} / lr"


def _cycles(o, ctx) -> list[int]:
    out, total, T = [], 0, o["T_0"]
    while total < ctx.calls:
        out.append(T)
        total += T
        T *= o["T_mult"]
    return out


def _modulo(o) -> list[str]:
    return [f"cosine = optax.cosine_decay_schedule(lr, decay_steps={o['T_0']}, alpha={_alpha(o)})",
            f"schedule = lambda count: cosine(count % {o['T_0']})"]  # fmt: skip


def _exact(o, ctx):
    if o["T_mult"] == 1:
        return _modulo(o)
    cycles = _cycles(o, ctx)
    bounds = [sum(cycles[: i + 1]) for i in range(len(cycles) - 1)]
    return [f"schedule = optax.join_schedules([optax.cosine_decay_schedule(lr, decay_steps=T, alpha={_alpha(o)}) "
            f"for T in {cycles}], boundaries={bounds})"]  # fmt: skip


SCHEDULER = Scheduler(
    name="CosineAnnealingWarmRestarts", formula="eta_min + (lr - eta_min)*(1 + cos(pi*T_cur/T_i))/2, T_i = T_0*T_mult**i",
    defaults={"T_0": REQUIRED, "T_mult": 1, "eta_min": 0.0},
    checks={"T_0": count, "T_mult": count,
            "eta_min": lambda k, v: check_float(k, v, 0.0)},
    twin=WarmRestartsTwin, exact=_exact,
    naive=Naive("restart-length", "every cycle T_0 calls long (T_mult dropped), where torch's i-th cycle lasts T_0*T_mult**i",
                lambda o, ctx: _modulo(o), acts=lambda o, ctx: o["T_mult"] > 1 and ctx.calls > o["T_0"] + 1),
)  # fmt: skip
