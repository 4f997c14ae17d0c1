"""v <- a*v + (1-a)*g^2; [centered: gbar <- a*gbar + (1-a)*g, v~ = v - gbar^2]; d <- g/(sqrt(v~) + eps); [momentum: b <- mu*b + d, d := b]; w <- w - lr*d

torch.optim.RMSprop. Stock optax is exact with ``eps_in_sqrt=False`` (optax.scale_by_rms / scale_by_stddev)
and torch's buffer, which holds g/avg without the lr (optax.trace before the lr, not after).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from xreg.core.checks import check_bool
from xreg.optimizers.adam import eps_scaled
from xreg.optimizers.base import Naive, Optimizer, closed_unit, formula_of, nonneg, unit
from xreg.optimizers.link import Link, chained


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        self.alpha, self.eps, self.mu, self.centered = o["alpha"], o["eps"], o["momentum"], flags["centered"]
        self.v, self.gbar, self.buf = (np.zeros_like(theta) for _ in range(3))
        self.eps_in_sqrt = o.get("eps_in_sqrt", False)  # optax's form, for a diagnosis only (not a torch option)

    def step(self, theta, g, lr, t, decay=None):
        self.v = self.alpha * self.v + (1 - self.alpha) * g * g
        v = self.v
        if self.centered:
            self.gbar = self.gbar + (1 - self.alpha) * (g - self.gbar)
            v = self.v - self.gbar * self.gbar
        avg = np.sqrt(v + self.eps) if self.eps_in_sqrt else np.sqrt(v) + self.eps  # torch: eps outside the sqrt
        if self.mu > 0:
            self.buf = self.mu * self.buf + g / avg  # the buffer holds g/avg, without lr
            return theta - lr * self.buf
        return theta - lr * (g / avg)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    import optax

    kw = {"decay": o["alpha"], "eps": o["eps"], "eps_in_sqrt": False}
    links = [Link("scale_by_stddev", optax.scale_by_stddev, kwargs=kw) if flags["centered"]
             else Link("scale_by_rms", optax.scale_by_rms, kwargs=kw)]  # fmt: skip
    if flags["momentum>0"]:  # torch's buffer holds g/avg without lr: trace before the lr, not after
        links.append(Link("trace", optax.trace, kwargs={"decay": o["momentum"]}))
    return links


def naive(n: Naive) -> Link:
    import optax

    mu = n.options["momentum"] if n.flags["momentum>0"] else None
    return chained(n.decay, Link("rmsprop", optax.rmsprop, (n.lr,), {"momentum": mu, "centered": n.flags["centered"]}))


def naive_cause(o: Mapping[str, Any], convention: str, all_decayed: bool) -> str:
    return ((f"optax.rmsprop defaults decay=0.9 (torch alpha={o['alpha']}) and " if o["alpha"] != 0.9 else "optax.rmsprop defaults ")
            + "eps_in_sqrt=True: 1/sqrt(v+eps) instead of torch's 1/(sqrt(v)+eps)")  # fmt: skip


OPTIMIZERS = (
    Optimizer(
        "rmsprop", "RMSprop", 1e-2,
        {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
        {"alpha": closed_unit, "eps": nonneg, "momentum": unit, "centered": check_bool},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.rmsprop", naive_cause=naive_cause,
        flags=lambda o: {"momentum>0": o["momentum"] > 0},
        alias_defaults=(
            ("optax.rmsprop defaults: decay=0.9 and eps inside the root", {"alpha": 0.9, "eps_in_sqrt": True}),
            ("decay=0.9 (optax.rmsprop's default) for torch's alpha", {"alpha": 0.9}),
            ("eps inside the root (optax.rmsprop's eps_in_sqrt=True)", {"eps_in_sqrt": True}),
        ),
        sum_loss=eps_scaled,
        order=30,
    ),
)  # fmt: skip
