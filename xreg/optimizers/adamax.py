"""m <- b1*m + (1-b1)*g; u <- max(b2*u, |g| + eps); w <- w - lr/(1-b1^t) * m/u

torch.optim.Adamax: stock optax.scale_by_adamax is exact.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from xreg.optimizers.adam import eps_scaled
from xreg.optimizers.base import Naive, Optimizer, betas, formula_of, nonneg
from xreg.optimizers.link import Link, chained


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        (self.b1, self.b2), self.eps = o["betas"], o["eps"]
        self.m, self.u = np.zeros_like(theta), np.zeros_like(theta)

    def step(self, theta, g, lr, t, decay=None):
        self.m = self.m + (1 - self.b1) * (g - self.m)
        self.u = np.maximum(self.b2 * self.u, np.abs(g) + self.eps)
        return theta - (lr / (1 - self.b1**t)) * (self.m / self.u)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    import optax

    (b1, b2), eps = o["betas"], o["eps"]
    return [Link("scale_by_adamax", optax.scale_by_adamax, kwargs={"b1": b1, "b2": b2, "eps": eps})]


def naive(n: Naive) -> Link:
    import optax

    (b1, b2), eps = n.options["betas"], n.options["eps"]
    return chained(n.decay, Link("adamax", optax.adamax, (n.lr, b1, b2), {"eps": eps}))


OPTIMIZERS = (
    Optimizer(
        "adamax", "Adamax", 2e-3,
        {"betas": (0.9, 0.999), "eps": 1e-8},
        {"betas": betas, "eps": nonneg},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.adamax",
        sum_loss=eps_scaled,
        order=50,
        counts_steps=lambda o: True,  # the update reads t
    ),
)  # fmt: skip
