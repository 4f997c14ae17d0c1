"""mu_t = b1*(1 - 0.5*0.96^(t*psi)); P_t = P_{t-1}*mu_t; m, v as Adam; w <- w - lr*[(1-mu_t)/(1-P_t)*g + mu_{t+1}/(1-P_t*mu_{t+1})*m] / (sqrt(v/(1-b2^t)) + eps)

torch.optim.NAdam (``decoupled_weight_decay=True``: NAdamW). optax's nesterov Adam is Dozat's form (torch's
only as psi -> inf), so the twin below keeps torch's momentum schedule. torch keeps ``mu_product`` in its
*default* dtype: float32 unless the program set float64.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np

from xreg.optimizers.adam import eps_scaled
from xreg.optimizers.base import Naive, Optimizer, betas, float32_default, formula_of, nonneg
from xreg.optimizers.link import Link, chained


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        (self.b1, self.b2), self.eps, self.psi = o["betas"], o["eps"], o["momentum_decay"]
        self.m, self.v = np.zeros_like(theta), np.zeros_like(theta)
        self.mu_product = 1.0
        # A user's plain torch loop keeps mu_product in torch's default dtype (float32 unless changed):
        # fl32(fl32(P) * fl32(mu)), measured against torch 2.13. For a diagnosis of such a loop only.
        self.float32_product = o.get("float32_mu_product", False)

    def step(self, theta, g, lr, t, decay=None):
        bc2 = 1 - self.b2**t
        mu = self.b1 * (1.0 - 0.5 * 0.96 ** (t * self.psi))
        mu_next = self.b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.psi))
        if self.float32_product:
            self.mu_product = float(np.float32(np.float32(self.mu_product) * np.float32(mu)))
        else:
            self.mu_product = self.mu_product * mu
        self.m = self.m + (1 - self.b1) * (g - self.m)
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        denom = np.sqrt(self.v / bc2) + self.eps
        theta = theta + (-lr * (1.0 - mu) / (1.0 - self.mu_product)) * (g / denom)
        return theta + (-lr * mu_next / (1.0 - self.mu_product * mu_next)) * (self.m / denom)


class NAdamState(NamedTuple):
    count: Any
    m: Any
    v: Any
    mu_product: Any


def scale_by_torch_nadam(b1, b2, eps, momentum_decay):
    """torch NAdam: ``mu_t = b1*(1-0.5*0.96^(t*psi))``, ``P_t = P_{t-1}*mu_t``,
    ``d = [(1-mu_t)/(1-P_t)*g + mu_{t+1}/(1-P_t*mu_{t+1})*m] / (sqrt(v/(1-b2^t)) + eps)``."""
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import count, dtype_of, moments, narrow, step_t, wide, zeros

    def init(params):
        return NAdamState(count(), zeros(params), zeros(params), jnp.ones([], dtype_of(params)))

    def update(updates, state, params=None):
        dt, t = dtype_of(updates), step_t(state.count)
        psi, wb1 = wide(momentum_decay), wide(b1)
        mu = wb1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = wb1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product = state.mu_product * mu.astype(state.mu_product.dtype)  # a tensor in torch: its dtype's product
        m, v = moments(state, updates, b1, b2)
        bc2 = narrow(1 - wide(b2) ** t, dt)
        c_g = narrow((1.0 - mu) / (1.0 - wide(mu_product)), dt)
        c_m = narrow(mu_next / (1.0 - wide(mu_product) * mu_next), dt)
        e = narrow(eps, dt)

        def direction(g, m, v):
            denom = jnp.sqrt(v / bc2) + e
            return c_g * (g / denom) + c_m * (m / denom)

        d = jax.tree.map(direction, updates, m, v)
        return d, NAdamState(optax.safe_increment(state.count), m, v, mu_product)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    w = o.wide
    return [Link("twins.scale_by_torch_nadam", scale_by_torch_nadam, tuple(w["betas"]),
                 {"eps": w["eps"], "momentum_decay": w["momentum_decay"]})]  # fmt: skip


def naive(n: Naive) -> Link:
    import optax

    (b1, b2), eps = n.options["betas"], n.options["eps"]
    if n.coupled:
        return chained(n.decay, Link("nadam", optax.nadam, (n.lr, b1, b2), {"eps": eps}))
    return Link("nadamw", optax.nadamw, (n.lr, b1, b2), {"eps": eps, "weight_decay": n.lam, "mask": n.mask})


def recorded(o: Mapping[str, Any], meta: Mapping[str, Any]) -> Mapping[str, Any]:
    """A torch run left at the float32 default dtype rounds its mu_product to float32 (torch's own scalar state)."""
    return {**o, "float32_mu_product": float32_default(meta)}


OPTIMIZERS = (
    Optimizer(
        "nadam", "NAdam", 2e-3,
        {"betas": (0.9, 0.999), "eps": 1e-8, "momentum_decay": 4e-3},
        {"betas": betas, "eps": nonneg, "momentum_decay": nonneg},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.nadam",
        naive_conventions=("coupled", "decoupled"),
        naive_cause=lambda o, c, a: ("optax NAdam is Dozat's form with momentum b1 at every step; torch's momentum schedule "
                                     f"mu_t = b1*(1-0.5*0.96^(t*{o['momentum_decay']})) starts near b1/2"),
        decoupled_flag=True,
        alias_defaults=(("optax.nadam: momentum b1 at every step (torch's momentum_decay -> inf)",
                         {"momentum_decay": float("inf"), "float32_mu_product": False}),),
        recorded=recorded, roundings=("float32_mu_product",),
        sum_loss=eps_scaled,
        notes=("float64 runs: torch keeps NAdam's mu_product in its default dtype (float32 unless "
               "the default dtype is set to float64 with torch.set_default_dtype), a relative 1e-8 rounding the optax chain does not make",),
        twins=(scale_by_torch_nadam,),
        order=60,
        counts_steps=lambda o: True,  # the update reads t
    ),
)  # fmt: skip
