"""v <- rho*v + (1-rho)*g^2; d <- sqrt(u + eps)/sqrt(v + eps) * g; u <- rho*u + (1-rho)*d^2; w <- w - lr*d

torch.optim.Adadelta: stock optax.scale_by_adadelta is exact (eps inside both roots).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from xreg.optimizers.base import Naive, Optimizer, closed_unit, formula_of, nonneg
from xreg.optimizers.link import Link


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        self.rho, self.eps = o["rho"], o["eps"]
        self.v, self.u = np.zeros_like(theta), np.zeros_like(theta)

    def step(self, theta, g, lr, t, decay=None):
        self.v = self.rho * self.v + (1 - self.rho) * g * g
        delta = np.sqrt(self.u + self.eps) / np.sqrt(self.v + self.eps) * g  # eps inside both roots
        self.u = self.rho * self.u + (1 - self.rho) * delta * delta
        return theta - lr * delta


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    import optax

    return [Link("scale_by_adadelta", optax.scale_by_adadelta, kwargs={"rho": o["rho"], "eps": o["eps"]})]


def naive(n: Naive) -> Link:
    import optax

    return Link("adadelta", optax.adadelta, (), {"rho": n.options["rho"], "eps": n.options["eps"], "weight_decay": n.lam,
                                                 **n.masked()})  # fmt: skip


OPTIMIZERS = (
    Optimizer(
        "adadelta", "Adadelta", 1.0,
        {"rho": 0.9, "eps": 1e-6},
        {"rho": closed_unit, "eps": nonneg},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.adadelta",
        naive_cause=lambda o, c, a: "optax.adadelta's learning_rate defaults to None: no sign flip, so it climbs the loss (torch lr=1.0)",
        alias_defaults=(("optax.adadelta(learning_rate=None): the direction is added, not subtracted (lr -> -1)",
                         {"lr_scale": -1.0}),),
        order=80,
    ),
)  # fmt: skip
