"""v <- rho*v + (1 - rho)*g^2; (centered: a <- rho*a + (1 - rho)*g, den = v - a^2 + eps, else den = v + eps); s = lr*g/sqrt(den); w <- w - s, or with momentum b <- mu*b + s, w <- w - b; weight_decay: w <- w - w*wd*lr first

keras.optimizers.RMSprop (Keras 3, ``keras/src/optimizers/rmsprop.py``). Three differences from torch.optim.RMSprop:
epsilon inside the square root (torch: ``g/(sqrt(v) + eps)``); the lr inside the momentum buffer (torch:
``b <- mu*b + g/(sqrt(v) + eps)``, ``w <- w - lr*b``: the two part once the lr changes); and the defaults, rho 0.9
(torch's alpha 0.99), epsilon 1e-7 (torch 1e-8), lr 0.001 (torch 0.01).
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np

from xreg.core.checks import check_bool
from xreg.optimizers import _keras
from xreg.optimizers.base import Naive, Optimizer, closed_unit, formula_of, nonneg
from xreg.optimizers.link import Link, chained


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        self.rho, self.mu, self.eps, self.centered = o["rho"], o["momentum"], o["epsilon"], flags["centered"]
        self.v = self.a = self.b = None

    def step(self, theta, g, lr, t, decay=None):
        dt = theta.dtype.type
        if self.v is None:
            self.v, self.a, self.b = (np.zeros_like(theta) for _ in range(3))
        rho, w = dt(self.rho), dt(1 - self.rho)
        self.v = rho * self.v + w * (g * g)
        if self.centered:
            self.a = rho * self.a + w * g
            den = self.v - self.a * self.a + dt(self.eps)
        else:
            den = self.v + dt(self.eps)
        s = (lr * g) / np.sqrt(den)
        if self.mu > 0:
            self.b = dt(self.mu) * self.b + s
            return theta - self.b
        return theta - s


class RMSState(NamedTuple):
    v: Any
    a: Any
    b: Any


def keras_rmsprop(rho, momentum, epsilon, centered: bool, use_momentum: bool, lr_t, decoupled=None):
    """Keras RMSprop's step to subtract (the module's equations, Keras's operation order, in the parameters' dtype),
    plus ``k*p`` of a decoupled decay ``p <- p - k*p`` run first."""
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import dtype_of, with_decay, zeros

    def init(params):
        return RMSState(zeros(params), zeros(params), zeros(params))

    def update(updates, state, params=None):
        dt = dtype_of(updates)
        lr, r, w, eps, mu = (jnp.asarray(c, dt) for c in (lr_t, rho, 1 - rho, epsilon, momentum))
        v = jax.tree.map(lambda v, g: r * v + w * jnp.square(g), state.v, updates)
        a = jax.tree.map(lambda a, g: r * a + w * g, state.a, updates) if centered else state.a
        den = jax.tree.map(lambda v, a: v - jnp.square(a) + eps, v, a) if centered else jax.tree.map(lambda v: v + eps, v)
        s = jax.tree.map(lambda g, d: (lr * g) / jnp.sqrt(d), updates, den)
        b = jax.tree.map(lambda b, s: mu * b + s, state.b, s) if use_momentum else state.b
        d = b if use_momentum else s
        d = with_decay(d, decoupled, params, updates)
        return d, RMSState(v, a, b)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    extra = {"decoupled": decoupled} if decoupled is not None else {}
    return [Link("twins.keras_rmsprop", keras_rmsprop, (o.wide["rho"], o.wide["momentum"], o.wide["epsilon"], flags["centered"],
                                                       flags["momentum>0"], lr), extra)]  # fmt: skip


def naive(n: Naive) -> Link:
    """The optax a porter writes for Keras's RMSprop: ``optax.rmsprop`` with its numbers, the decay added to the gradient."""
    import optax

    o = n.options
    mu = o["momentum"] if n.flags["momentum>0"] else None
    return chained(n.decay, Link("rmsprop", optax.rmsprop, (n.lr,), {"decay": o["rho"], "eps": o["epsilon"],
                                                                     "centered": n.flags["centered"], "momentum": mu}))  # fmt: skip


def _naive_cause(o, convention, all_decayed) -> str:
    return ("optax.add_decayed_weights before optax.rmsprop adds the decay to the gradient, which the rms then scales, where "
            "Keras decays w first (w - w*wd*lr)" + ("; and optax's momentum traces g/rms and steps lr times it, Keras traces "
                                                   "lr*g/rms (they part once the lr changes)" if o["momentum"] else ""))


def _torch_update(p, g, state, group, t):
    import torch

    rho, mu, eps = group["rho"], group["momentum"], group["epsilon"]
    v = state["v"]
    v.copy_(rho * v + (1 - rho) * (g * g))
    if group["centered"]:
        a = state["a"]
        a.copy_(rho * a + (1 - rho) * g)
        den = v - a * a + eps
    else:
        den = v + eps
    s = (group["lr"] * g) / torch.sqrt(den)
    if mu > 0:
        state["b"].copy_(mu * state["b"] + s)
        s = state["b"]
    p.sub_(s)


OPTIMIZERS = (
    Optimizer(
        "keras.rmsprop", "keras.RMSprop", 0.001,
        {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False},
        {"rho": closed_unit, "momentum": closed_unit, "epsilon": nonneg, "centered": check_bool},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.rmsprop", naive_conventions=("decoupled",),
        naive_cause=_naive_cause,
        native_convention="decoupled",
        flags=lambda o: {"momentum>0": o["momentum"] > 0},
        own_step_size=True,
        common=_keras.COMMON,
        framework="keras", keras_class="RMSprop",
        torch_twin=lambda: _keras.torch_twin(_torch_update, ("v", "a", "b"), "KerasRMSprop"),
        twins=(keras_rmsprop,),
        order=1030,
    ),
)  # fmt: skip
