"""b_t = t^beta2_decay; 2-D: R <- lerp(R, rowmean(g^2), b_t), C <- lerp(C, colmean(g^2), b_t), v = R C / mean(R); 1-D: v <- lerp(v, g^2, b_t); u = g / sqrt(max(v, eps1^2)); a = max(eps2, rms(w)) * min(lr, 1/sqrt(t)); w <- w*(1 - lr*wd) - a/max(1, rms(u)/d) * u

torch.optim.Adafactor, parameter by parameter (a 2-D or larger one factored into row and column second
moments), with torch's own decoupled decay inside the step: the step size a is taken from w *before*
w <- w*(1 - lr*wd). Its direction holds the step size (the chain ends with ``scale(-1)``).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np

from xreg.core.checks import XregInputError
from xreg.optimizers import _kernels
from xreg.optimizers.base import Naive, Optimizer, at_least_one, formula_of, nonneg, nonpositive
from xreg.optimizers.link import Link


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        self.layout = layout
        self.beta2_decay, (self.eps1, self.eps2), self.d = o["beta2_decay"], tuple(o["eps"]), o["d"]
        self.state: dict[str, Any] = {}

    def step(self, theta, g, lr, t, decay=None):
        dt = theta.dtype
        eps1 = float(np.finfo(dt).eps) if self.eps1 is None else self.eps1
        b = float(t) ** self.beta2_decay
        rho = min(float(lr), 1 / float(t) ** 0.5)
        P, G = self.layout.tree(theta), self.layout.tree(g)
        K = self.layout.tree(decay) if decay is not None else None
        out = {}
        for n, p in P.items():
            gr = G[n]
            alpha = max(self.eps2, float(np.linalg.norm(p)) / p.size**0.5) * rho
            if K is not None:
                p = p * (1 - K[n])
            if gr.ndim > 1:
                R, C = self.state.get(n, (np.zeros(gr.shape[:-1] + (1,), dt), np.zeros(gr.shape[:-2] + (1,) + gr.shape[-1:], dt)))
                R = _kernels.lerp(R, np.linalg.norm(gr, axis=-1, keepdims=True) ** 2 / gr.shape[-1], b)
                C = _kernels.lerp(C, np.linalg.norm(gr, axis=-2, keepdims=True) ** 2 / gr.shape[-2], b)
                self.state[n] = (R, C)
                v = (R @ C) / np.maximum(R.mean(axis=-2, keepdims=True), eps1)
            else:
                V = _kernels.lerp(self.state.get(n, np.zeros_like(gr)), gr * gr, b)
                self.state[n] = V
                v = V
            u = 1 / np.sqrt(np.maximum(v, eps1 * eps1)) * gr
            denom = max(1.0, float(np.linalg.norm(u)) / (u.size**0.5 * self.d))
            out[n] = p + (-alpha / denom) * u
        return self.layout.flat(out, dt)


class AdafactorState(NamedTuple):
    count: Any
    row: Any  # per leaf: the row second moments (..., r, 1) of a >=2-D leaf, the full second moment of a 1-D one
    col: Any  # per leaf: the column second moments (..., 1, c) of a >=2-D leaf, a scalar placeholder otherwise


def scale_by_torch_adafactor(lr_t, beta2_decay, eps, d, decoupled=None):
    """torch.optim.Adafactor's step, the step size included (the chain ends with ``scale(-1)``): per leaf,
    ``b_t = t^beta2_decay``; a >=2-D leaf keeps row and column means of g^2 (``lerp`` by b_t) and
    estimates ``v = R C / max(mean(R), eps1)``, a 1-D leaf keeps ``v`` itself; ``u = g/sqrt(max(v, eps1^2))``;
    the direction is ``a/max(1, rms(u)/d) * u`` with ``a = max(eps2, rms(w))*min(lr_t, 1/sqrt(t))`` taken
    from w before the decay. ``eps = (eps1 or None, eps2)``: None is the parameters' machine epsilon.
    Scalars are computed wide and rounded once, as torch's Python floats.

    ``decoupled``: a tree of ``k = lr_t*wd`` (or a function of the params that returns it, as
    ``xreg.twins.decay_rates``); torch's ``w <- w*(1 - k)`` before its update adds ``k*w`` to the direction.
    """
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import count, decays, leafwise, narrow, step_t, wide

    eps1, eps2 = eps

    def init(params):
        row = jax.tree.map(lambda p: jnp.zeros(p.shape[:-1] + (1,), p.dtype) if p.ndim > 1 else jnp.zeros_like(p), params)
        col = jax.tree.map(lambda p: jnp.zeros(p.shape[:-2] + (1,) + p.shape[-1:], p.dtype) if p.ndim > 1
                           else jnp.zeros([], p.dtype), params)  # fmt: skip
        return AdafactorState(count(), row, col)

    def update(updates, state, params=None):
        t = step_t(state.count)
        b = t ** wide(beta2_decay)
        rho = jnp.minimum(wide(lr_t), 1 / jnp.sqrt(t))

        def leaf(g, p, R, C, k):
            dt = g.dtype
            e1 = wide(jnp.finfo(dt).eps) if eps1 is None else wide(eps1)
            alpha = jnp.maximum(wide(eps2), wide(jnp.linalg.norm(p)) / (p.size**0.5)) * rho
            w = narrow(b, dt)
            if g.ndim > 1:
                R = _kernels.lerp(R, jnp.linalg.norm(g, axis=-1, keepdims=True) ** 2 / g.shape[-1], w, jnp)
                C = _kernels.lerp(C, jnp.linalg.norm(g, axis=-2, keepdims=True) ** 2 / g.shape[-2], w, jnp)
                v = (R @ C) / jnp.maximum(jnp.mean(R, axis=-2, keepdims=True), narrow(e1, dt))
            else:
                R = _kernels.lerp(R, g * g, w, jnp)
                v = R
            u = 1 / jnp.sqrt(jnp.maximum(v, narrow(e1 * e1, dt))) * g
            denom = jnp.maximum(1.0, wide(jnp.linalg.norm(u)) / (u.size**0.5 * wide(d)))
            direction = narrow(alpha / denom, dt) * u
            if k is not None:
                direction = direction + k * p
            return direction, R, C

        moves, R, C = leafwise(leaf, updates, params, state.row, state.col, decays(decoupled, params, updates))
        return moves, AdafactorState(optax.safe_increment(state.count), R, C)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    w = o.wide
    extra = {"decoupled": decoupled} if decoupled is not None else {}
    return [Link("twins.scale_by_torch_adafactor", scale_by_torch_adafactor, (lr,),
                 {"beta2_decay": w["beta2_decay"], "eps": tuple(w["eps"]), "d": w["d"], **extra})]  # fmt: skip


def naive(n: Naive) -> Link:
    import optax

    o = n.options
    return Link("adafactor", optax.adafactor, (n.lr,), {"decay_rate": -o["beta2_decay"], "clipping_threshold": o["d"],
                                                        "weight_decay_rate": n.lam, **n.masked()})  # fmt: skip


def naive_cause(o: Mapping[str, Any], convention: str, all_decayed: bool) -> str:
    """What optax.adafactor(lr, decay_rate=-beta2_decay, clipping_threshold=d, weight_decay_rate=wd) does
    differently from torch.optim.Adafactor (its decay schedule 1 - t^-decay_rate and its update clipping
    by block rms are torch's)."""
    eps1, eps2 = o["eps"]
    parts = [
        "optax.adafactor factors only parameters whose two largest dimensions are >= 128 (min_dim_size_to_factor; "
        "torch factors every 2-D parameter)",
        f"adds eps=1e-30 to g^2 (torch: v floored at eps1^2, eps1={'the dtype epsilon' if eps1 is None else eps1})",
        "computes its decay 1 - t^-decay_rate in float32 (torch: a Python float; 1e-8 relative)",
        "scales by the lr itself (torch: min(lr, 1/sqrt(t)))",
        "decays by weight_decay_rate*w after the lr scaling (torch: w*(1 - lr*wd) before the update)",
    ]
    if eps2 != 1e-3:
        parts.append(f"floors the parameter scale rms(w) at 1e-3 (torch: eps2={eps2})")
    return "; ".join(parts)


def _eps(name: str, v: Any) -> tuple[float | None, float]:
    """torch Adafactor's eps = (eps1, eps2): eps1 None (the dtype's machine epsilon) or >= 0, eps2 >= 0."""
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise XregInputError(f"The '{name}' parameter must be a pair (eps1 or none, eps2). Got {v!r} instead.")
    first = None if v[0] is None or v[0] in ("none", "None") else nonneg(f"{name}[0]", v[0])
    return (first, nonneg(f"{name}[1]", v[1]))


OPTIMIZERS = (
    Optimizer(
        "adafactor", "Adafactor", 1e-2,
        {"beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0},
        {"beta2_decay": nonpositive, "eps": _eps, "d": at_least_one},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.adafactor",
        naive_conventions=("decoupled",), naive_cause=naive_cause,
        native_convention="decoupled",
        own_step_size=True,
        decays_inside=True,
        twins=(scale_by_torch_adafactor,),
        order=90,
        counts_steps=lambda o: True,  # the update reads t
    ),
)  # fmt: skip
