"""ExponentialLR: lr_t = lr * gamma**t (torch: the lr times gamma at every call, a product of t roundings).

optax: ``exponential_decay(lr, transition_steps=1, decay_rate=gamma)``, the closed form: it parts from
torch's product by round-off (2.2e-15 relative after 500 calls with gamma 0.99).
"""

from __future__ import annotations

from xreg.core.checks import check_float
from xreg.schedules.base import REQUIRED, Scheduler, Twin, num


class ExponentialTwin(Twin):
    def get_lr(self) -> float:
        if self._is_initial:
            return self.group["lr"]
        return self.group["lr"] * self.o["gamma"]

    def closed_form(self) -> float:
        return self.base_lr * self.o["gamma"] ** self.last_epoch


def _exact(o, ctx):
    return [f"schedule = optax.exponential_decay(lr, transition_steps=1, decay_rate={num(o['gamma'])})"]


SCHEDULER = Scheduler(
    name="ExponentialLR", alias="exponential", formula="lr * gamma**t",
    defaults={"gamma": REQUIRED}, checks={"gamma": lambda k, v: check_float(k, v, 0.0, closed="neither")},
    twin=ExponentialTwin, exact=_exact, int32_float32=True,
    exact_note="the closed form of torch's product of t roundings",
)  # fmt: skip
