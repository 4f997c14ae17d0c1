"""MultiStepLR: lr_t = lr * gamma**(number of milestones <= t) (a milestone given twice counts twice).

optax: ``piecewise_constant_schedule(lr, {m: gamma**k})`` (k: how often m is listed); the port that writes
``{m: gamma for m in milestones}`` keeps a repeated milestone once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter

from xreg.core.checks import XregInputError, check_float
from xreg.schedules.base import Naive, REQUIRED, Scheduler, Twin, count, num


def _milestones(k, v):
    items = (v,) if isinstance(v, int) and not isinstance(v, bool) else v
    if isinstance(items, str) or not isinstance(items, (list, tuple)) or not items:
        raise XregInputError(f"The '{k}' parameter must be a list of ints >= 1. Got {v!r} instead.")
    return tuple(count(k, m) for m in items)


class MultiStepTwin(Twin):
    def get_lr(self) -> float:
        counts = Counter(self.o["milestones"])
        if self.last_epoch not in counts:
            return self.group["lr"]
        return self.group["lr"] * self.o["gamma"] ** counts[self.last_epoch]

    def closed_form(self) -> float:
        return self.base_lr * self.o["gamma"] ** bisect_right(sorted(self.o["milestones"]), self.last_epoch)


def _scales(o, repeated: bool) -> str:
    counts = Counter(o["milestones"])
    g = o["gamma"]
    return "{" + ", ".join(f"{m}: {num(g ** counts[m] if repeated else g)}" for m in sorted(counts)) + "}"


def _exact(o, ctx):
    return [f"schedule = optax.piecewise_constant_schedule(lr, {_scales(o, True)})"]


def _naive(o, ctx):
    return [f"schedule = optax.piecewise_constant_schedule(lr, {_scales(o, False)})"]


SCHEDULER = Scheduler(
    name="MultiStepLR", formula="lr * gamma**(milestones passed)",
    defaults={"milestones": REQUIRED, "gamma": 0.1},
    checks={"milestones": _milestones, "gamma": lambda k, v: check_float(k, v, 0.0, closed="neither")},
    twin=MultiStepTwin, exact=_exact,
    naive=Naive("repeated-milestone", "a milestone listed twice multiplies torch's lr by gamma**2 there; "
                "{m: gamma for m in milestones} keeps it once", _naive,
                acts=lambda o, ctx: len(set(o["milestones"])) < len(o["milestones"]) and o["gamma"] != 1.0
                and min(o["milestones"]) < ctx.calls),
)  # fmt: skip
