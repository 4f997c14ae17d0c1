"""StepLR: lr_t = lr * gamma**(t // step_size) (torch multiplies by gamma at every multiple of step_size).

optax: ``exponential_decay(lr, transition_steps=step_size, decay_rate=gamma, staircase=True)``; the port
that forgets ``staircase=True`` decays smoothly, ``lr * gamma**(t / step_size)``.
"""

from __future__ import annotations

from xreg.core.checks import check_float
from xreg.schedules.base import Naive, REQUIRED, Scheduler, Twin, count, num


class StepTwin(Twin):
    def get_lr(self) -> float:
        if self.last_epoch == 0 or self.last_epoch % self.o["step_size"] != 0:
            return self.group["lr"]
        return self.group["lr"] * self.o["gamma"]

    def closed_form(self) -> float:
        return self.base_lr * self.o["gamma"] ** (self.last_epoch // self.o["step_size"])


def _exact(o, ctx):
    return [f"schedule = optax.exponential_decay(lr, transition_steps={o['step_size']}, decay_rate={num(o['gamma'])}, staircase=True)"]


def _naive(o, ctx):
    return [f"schedule = optax.exponential_decay(lr, transition_steps={o['step_size']}, decay_rate={num(o['gamma'])})"]


SCHEDULER = Scheduler(
    name="StepLR", alias="step", formula="lr * gamma**(t // step_size)",
    defaults={"step_size": REQUIRED, "gamma": 0.1},
    checks={"step_size": count, "gamma": lambda k, v: check_float(k, v, 0.0, closed="neither")},
    twin=StepTwin, exact=_exact, int32_float32=True,
    naive=Naive("staircase", "optax.exponential_decay without staircase=True decays every step, lr*gamma**(t/step_size), "
                "where torch's StepLR drops by gamma once every step_size", _naive,
                acts=lambda o, ctx: o["step_size"] > 1 and o["gamma"] != 1.0 and ctx.calls > 1),
)  # fmt: skip
