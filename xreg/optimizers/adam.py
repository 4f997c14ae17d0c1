"""m <- b1*m + (1-b1)*g; v <- b2*v + (1-b2)*g^2; [amsgrad: vmax <- max(vmax, v), v := vmax]; w <- w - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)

torch.optim.Adam (weight_decay coupled: g + lam*w; ``decoupled_weight_decay=True`` makes it AdamW) and
torch.optim.AdamW (decoupled: w <- w - lr*lam*w before the update). AMSGrad: torch keeps the max of the
*raw* v and divides by the current sqrt(1-b2^t); optax.scale_by_amsgrad takes the max of the
bias-corrected v_hat, so the twin below keeps torch's order.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

import numpy as np

from xreg.core.checks import check_bool
from xreg.optimizers.base import Naive, Optimizer, betas, formula_of, nonneg
from xreg.optimizers.link import Link, chained


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        (self.b1, self.b2), self.eps, self.amsgrad = o["betas"], o["eps"], flags["amsgrad"]
        self.m, self.v, self.vmax = (np.zeros_like(theta) for _ in range(3))

    def step(self, theta, g, lr, t, decay=None):
        self.m = self.m + (1 - self.b1) * (g - self.m)  # lerp(m, g, 1 - b1)
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
        if self.amsgrad:
            self.vmax = np.maximum(self.vmax, self.v)  # max of the raw v, corrected afterwards
            denom = np.sqrt(self.vmax) / math.sqrt(bc2) + self.eps
        else:
            denom = np.sqrt(self.v) / math.sqrt(bc2) + self.eps
        return theta - (lr / bc1) * (self.m / denom)


class AMSGradState(NamedTuple):
    count: Any
    m: Any
    v: Any
    vmax: Any


def scale_by_torch_amsgrad(b1, b2, eps):
    """``m, v`` as Adam; ``vmax <- max(vmax, v)``; ``d = m/(1-b1^t) / (sqrt(vmax)/sqrt(1-b2^t) + eps)``."""
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import count, dtype_of, moments, narrow, step_t, wide, zeros

    def init(params):
        return AMSGradState(count(), zeros(params), zeros(params), zeros(params))

    def update(updates, state, params=None):
        dt, t = dtype_of(updates), step_t(state.count)
        m, v = moments(state, updates, b1, b2)
        vmax = jax.tree.map(jnp.maximum, state.vmax, v)
        bc1, sqrt_bc2 = narrow(1 - wide(b1) ** t, dt), narrow(jnp.sqrt(1 - wide(b2) ** t), dt)
        e = narrow(eps, dt)
        d = jax.tree.map(lambda m, vm: (m / (jnp.sqrt(vm) / sqrt_bc2 + e)) / bc1, m, vmax)
        return d, AMSGradState(optax.safe_increment(state.count), m, v, vmax)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    import optax

    (b1, b2), eps = o["betas"], o["eps"]
    if flags["amsgrad"]:
        return [Link("twins.scale_by_torch_amsgrad", scale_by_torch_amsgrad, tuple(o.wide["betas"]), {"eps": o.wide["eps"]})]
    return [Link("scale_by_adam", optax.scale_by_adam, kwargs={"b1": b1, "b2": b2, "eps": eps})]


def naive(n: Naive) -> Link:
    """optax.adamw, the alias every port reaches for (AMSGrad: optax.amsgrad, coupled or decoupled by hand)."""
    import optax

    (b1, b2), eps = n.options["betas"], n.options["eps"]
    if n.flags["amsgrad"]:
        if n.coupled:
            return chained(n.decay, Link("amsgrad", optax.amsgrad, (n.lr, b1, b2), {"eps": eps}))
        return chained(Link("scale_by_amsgrad", optax.scale_by_amsgrad, (b1, b2), {"eps": eps}), n.decay,
                       Link("scale_by_learning_rate", optax.scale_by_learning_rate, (n.lr,)))  # fmt: skip
    return Link("adamw", optax.adamw, (n.lr, b1, b2), {"eps": eps, "weight_decay": n.lam})


def naive_cause(o: Mapping[str, Any], convention: str, all_decayed: bool) -> str | None:
    if o["amsgrad"]:
        return ("optax AMSGrad takes the max of the bias-corrected v_hat; torch takes the max of the raw v "
                "and then divides by sqrt(1-b2^t)")  # fmt: skip
    if convention != "decoupled":
        return "optax.adamw decays decoupled (w <- w - lr*lam*w); torch Adam(weight_decay) adds lam*w to the gradient"
    return None if all_decayed else "optax.adamw without a mask decays the bias too (torch: bias in a wd=0 group)"


def decoupled_alias(lr: float, wd: float, o: Mapping[str, Any], mask: str) -> str:
    return (f"optax.adamw(learning_rate={lr!r}, b1={o['betas'][0]!r}, b2={o['betas'][1]!r}, eps={o['eps']!r}, "
            f"weight_decay={wd!r}{mask}) when amsgrad is off")  # fmt: skip


def eps_scaled(o: Mapping[str, Any], lr: float, M: int) -> dict[str, float]:
    """Adaptive classes whose direction is unchanged when g and eps are both scaled by M (eps outside a
    root of a second moment, or added to |g|): a sum loss over M rows is the mean loss with eps*M."""
    return {"lr": lr, "eps": o["eps"] * M}


_COMMON = dict(
    default_lr=1e-3,
    counts_steps=lambda o: True,  # the bias corrections 1 - b^t
    defaults={"betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False},
    checks={"betas": betas, "eps": nonneg, "amsgrad": check_bool},
    formula=formula_of(__doc__),
    reference=Reference, direction=direction, naive=naive, naive_alias="optax.adamw",
    naive_conventions=("coupled", "decoupled"), naive_cause=naive_cause,
    decoupled_alias=decoupled_alias, sum_loss=eps_scaled, fused=True, twins=(scale_by_torch_amsgrad,),
)  # fmt: skip

OPTIMIZERS = (
    Optimizer("adam", "Adam", decoupled_flag=True, decoupled_form="adamw", order=20, **_COMMON),
    Optimizer("adamw", "AdamW", native_convention="decoupled", default_weight_decay=1e-2, coupled_form="adam", order=21, **_COMMON),
)
