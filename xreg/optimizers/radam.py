"""m, v as Adam; rho_t = rho_inf - 2t*b2^t/(1-b2^t); if rho_t > 5: w <- w - lr * m/(1-b1^t) * r_t * sqrt(1-b2^t)/(sqrt(v) + eps) else w <- w - lr*m/(1-b1^t)

torch.optim.RAdam (``decoupled_weight_decay=True``: RAdamW). torch puts eps on the raw sqrt(v) and switches
on rho_t > 5; optax uses sqrt(v_hat)+eps and rho_t >= 5, so the twin below keeps torch's.
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
        self.m, self.v = np.zeros_like(theta), np.zeros_like(theta)

    def step(self, theta, g, lr, t, decay=None):
        self.m = self.m + (1 - self.b1) * (g - self.m)
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
        m_hat = self.m / bc1
        rho_inf = 2 / (1 - self.b2) - 1
        rho_t = rho_inf - 2 * t * self.b2**t / bc2
        if rho_t > 5.0:  # strict, as torch
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = bc2**0.5 / (np.sqrt(self.v) + self.eps)  # eps on the raw sqrt(v)
            return theta - m_hat * lr * adaptive * rect
        return theta - m_hat * lr


def scale_by_torch_radam(b1, b2, eps):
    """torch RAdam: ``m_hat = m/(1-b1^t)``; if ``rho_t > 5``: ``d = m_hat * sqrt(1-b2^t)/(sqrt(v)+eps) * r_t``
    else ``d = m_hat``."""
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import MomentState, count, dtype_of, moments, narrow, step_t, wide, zeros

    def init(params):
        return MomentState(count(), zeros(params), zeros(params))

    def update(updates, state, params=None):
        dt, t = dtype_of(updates), step_t(state.count)
        m, v = moments(state, updates, b1, b2)
        wb2 = wide(b2)
        bc1, bc2 = 1 - wide(b1) ** t, 1 - wb2**t
        rho_inf = 2 / (1 - wb2) - 1
        rho_t = rho_inf - 2 * t * wb2**t / bc2
        rect = narrow(jnp.sqrt(
            jnp.maximum((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0.0)
        ), dt)  # fmt: skip
        bc1, sqrt_bc2, e = narrow(bc1, dt), narrow(jnp.sqrt(bc2), dt), narrow(eps, dt)

        def direction(m, v):
            m_hat = m / bc1
            return jnp.where(rho_t > 5.0, m_hat * (sqrt_bc2 / (jnp.sqrt(v) + e)) * rect, m_hat)

        d = jax.tree.map(direction, m, v)
        return d, MomentState(optax.safe_increment(state.count), m, v)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    return [Link("twins.scale_by_torch_radam", scale_by_torch_radam, tuple(o.wide["betas"]), {"eps": o.wide["eps"]})]


def naive(n: Naive) -> Link:
    import optax

    (b1, b2), eps = n.options["betas"], n.options["eps"]
    if n.coupled:
        return chained(n.decay, Link("radam", optax.radam, (n.lr, b1, b2), {"eps": eps}))
    return chained(Link("scale_by_radam", optax.scale_by_radam, (b1, b2), {"eps": eps}), n.decay,
                   Link("scale_by_learning_rate", optax.scale_by_learning_rate, (n.lr,)))  # fmt: skip


OPTIMIZERS = (
    Optimizer(
        "radam", "RAdam", 1e-3,
        {"betas": (0.9, 0.999), "eps": 1e-8},
        {"betas": betas, "eps": nonneg},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.radam",
        naive_conventions=("coupled", "decoupled"),
        naive_cause=lambda o, c, a: "optax RAdam puts eps on sqrt(v_hat) and switches at rho_t >= 5; torch puts eps on raw sqrt(v), rho_t > 5",
        decoupled_flag=True,
        sum_loss=eps_scaled,
        twins=(scale_by_torch_radam,),
        order=70,
        counts_steps=lambda o: True,  # the update reads t
    ),
)  # fmt: skip
