"""OneCycleLR: from max_lr/div_factor up to max_lr by step pct_start*total_steps - 1, then down to
max_lr/(div_factor*final_div_factor) at total_steps - 1 (cosine or linear); three_phase comes back down to
max_lr/div_factor by 2*pct_start*total_steps - 2 before the last phase. The optimizer's lr is not read.

optax has no exact form: ``cosine_onecycle_schedule`` peaks at int(pct_start*T) and ends at T (torch: the
float pct_start*T - 1 and T - 1), has no three-phase form, and ``linear_onecycle_schedule`` always has
three phases (pct_final 0.85). xreg's twin ``torch_onecycle`` (below) computes torch's phases in jnp.
torch's cycle_momentum (its default) also moves the optimizer's momentum (Adam's beta1) the other way,
max_momentum -> base_momentum -> max_momentum: ``torch_onecycle(..., of="momentum")``; optax's onecycle
schedules only the lr.
"""

from __future__ import annotations

import math

from xreg.core.checks import XregInputError, check_bool, check_choice, check_float
from xreg.schedules.base import CALLS, LR, Naive, Scheduler, Twin, count, num

def phases(o, of: str = "lr") -> list[tuple[float, str, str]]:
    """torch's phases: (end step, start value, end value), value names of :func:`values`; ``of`` the lr or the momentum."""
    T, p = o["total_steps"], o["pct_start"]
    if o["three_phase"]:
        ends = (float(p * T) - 1, float(2 * p * T) - 2, T - 1)
        pairs = [("initial", "max"), ("max", "initial"), ("initial", "min")] if of == "lr" else [("max_m", "base_m"), ("base_m", "max_m"), ("max_m", "max_m")]
    else:
        ends = (float(p * T) - 1, T - 1)
        pairs = [("initial", "max"), ("max", "min")] if of == "lr" else [("max_m", "base_m"), ("base_m", "max_m")]
    return [(end, a, b) for end, (a, b) in zip(ends, pairs)]


def values(o) -> dict[str, float]:
    initial = o["max_lr"] / o["div_factor"]
    return {"initial": initial, "max": o["max_lr"], "min": initial / o["final_div_factor"],
            "max_m": o["max_momentum"], "base_m": o["base_momentum"]}  # fmt: skip


def _anneal(strategy, start, end, pct, cos=math.cos, pi=math.pi):
    if strategy == "cos":
        return end + (start - end) / 2.0 * (cos(pi * pct) + 1)
    return (end - start) * pct + start


class OneCycleTwin(Twin):
    def __init__(self, group, o):
        v = values(o)
        group["initial_lr"] = v["initial"]
        super().__init__(group, o)

    def get_lr(self) -> float:
        if self.o["cycle_momentum"]:  # torch sets the momentum in the same call
            self.group["momentum"] = self._value("momentum")
        return self._value("lr")

    def _value(self, of: str) -> float:
        v, step, start = values(self.o), self.last_epoch, 0.0
        ph = phases(self.o, of)
        for i, (end, a, b) in enumerate(ph):
            if step <= end or i == len(ph) - 1:
                pct = (step - start) / (end - start)
                return _anneal(self.o["anneal_strategy"], v[a], v[b], pct)
            start = end
        raise AssertionError


def torch_onecycle(total_steps, max_lr, pct_start=0.3, anneal_strategy="cos", div_factor=25.0, final_div_factor=1e4,
                   three_phase=False, base_momentum=0.85, max_momentum=0.95, of="lr"):  # fmt: skip
    """torch's OneCycleLR as an optax schedule (a function of the count), phase by phase as torch computes it: the lr,
    or (``of="momentum"``) the momentum (Adam's beta1) torch's cycle_momentum sets beside it."""
    import jax.numpy as jnp

    o = {"total_steps": total_steps, "max_lr": max_lr, "pct_start": pct_start, "div_factor": div_factor,
         "final_div_factor": final_div_factor, "three_phase": three_phase, "base_momentum": base_momentum, "max_momentum": max_momentum}  # fmt: skip
    v, ph = values(o), phases(o, of)

    starts = [0.0] + [end for end, _, _ in ph[:-1]]

    def schedule(count):
        vals = [_anneal(anneal_strategy, v[a], v[b], (count - s) / (end - s), jnp.cos, jnp.pi) for (end, a, b), s in zip(ph, starts)]
        out = vals[-1]
        for (end, _, _), val in reversed(list(zip(ph[:-1], vals[:-1]))):  # the first phase whose end the count has not passed
            out = jnp.where(count <= end, val, out)
        return out

    return schedule


def _args(o) -> str:
    return ", ".join(f"{k}={num(o[k])}" for k in ("total_steps", "max_lr", "pct_start", "anneal_strategy", "div_factor",
                                                  "final_div_factor", "three_phase", "base_momentum", "max_momentum"))  # fmt: skip


def _exact(o, ctx):
    return ["from xreg.schedules.onecycle import torch_onecycle  # optax has no schedule with torch's phases",
            f"schedule = torch_onecycle({_args(o)})"]  # fmt: skip


def _momentum(o, ctx):
    return ["from xreg.schedules.onecycle import torch_onecycle",
            f"momentum = torch_onecycle({_args(o)}, of='momentum')  # cycle_momentum: torch moves it beside the lr"]


def _naive(o, ctx):
    kind = "cosine" if o["anneal_strategy"] == "cos" else "linear"
    return [f"schedule = optax.{kind}_onecycle_schedule(transition_steps={o['total_steps']}, peak_value={num(o['max_lr'])}, "
            f"pct_start={num(o['pct_start'])}, div_factor={num(o['div_factor'])}, final_div_factor={num(o['final_div_factor'])})"]


def _validate(o, ctx):
    if o["total_steps"] < ctx.calls:
        raise XregInputError(f"OneCycleLR's total_steps={o['total_steps']} is fewer than the run's {ctx.calls} scheduler calls "
                             f"(torch: 'Tried to step {ctx.calls} times'); raise total_steps or leave it to xreg (the run's calls).")


SCHEDULER = Scheduler(
    name="OneCycleLR", formula="max_lr/div_factor -> max_lr -> max_lr/(div_factor*final_div_factor), torch's phase ends",
    defaults={"max_lr": LR, "total_steps": CALLS, "pct_start": 0.3, "anneal_strategy": "cos", "cycle_momentum": True,
              "base_momentum": 0.85, "max_momentum": 0.95, "div_factor": 25.0, "final_div_factor": 1e4, "three_phase": False},
    checks={"max_lr": lambda k, v: check_float(k, v, 0.0, closed="neither"), "total_steps": count,
            "pct_start": lambda k, v: check_float(k, v, 0.0, 1.0), "anneal_strategy": lambda k, v: check_choice(k, v, ("cos", "linear")),
            "cycle_momentum": lambda k, v: check_bool(k, v),
            "base_momentum": lambda k, v: check_float(k, v, 0.0, 1.0, closed="left"),
            "max_momentum": lambda k, v: check_float(k, v, 0.0, 1.0, closed="left"),
            "div_factor": lambda k, v: check_float(k, v, 0.0, closed="neither"),
            "final_div_factor": lambda k, v: check_float(k, v, 0.0, closed="neither"),
            "three_phase": lambda k, v: check_bool(k, v)},
    twin=OneCycleTwin, exact=_exact, validate=_validate, momentum=_momentum,
    exact_note="xreg's twin: optax's onecycle schedules put the phase ends elsewhere",
    naive=Naive("onecycle-phases", "optax's onecycle schedule peaks at step int(pct_start*total_steps) and ends at total_steps, "
                "where torch's OneCycleLR peaks at pct_start*total_steps - 1 and ends at total_steps - 1 (optax's linear one "
                "has three phases, pct_final 0.85; torch's three_phase has no optax form)", _naive),
)  # fmt: skip
