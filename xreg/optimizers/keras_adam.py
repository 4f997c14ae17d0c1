"""m <- m + (g - m)*(1 - b1); v <- v + (g^2 - v)*(1 - b2); alpha = lr*sqrt(1 - b2^t)/(1 - b1^t); w <- w - m*alpha/(sqrt(v) + eps); weight_decay: w <- w - w*wd*lr first

keras.optimizers.Adam and AdamW (Keras 3, ``keras/src/optimizers/adam.py``; AdamW is Adam with weight_decay 0.004
by default). epsilon is outside the bias correction ("epsilon hat": the formula just before Kingma & Ba's
Section 2.1, not the epsilon of their Algorithm 1, as Keras's docstring says): torch divides the corrected moments, ``m_hat/(sqrt(v_hat) + eps)``, which is Keras's rule with
``eps_hat = eps*sqrt(1 - b2^t)``, so the two part where sqrt(v) is near eps (early steps, small gradients).
amsgrad keeps ``v_hat = max(v_hat, v)`` and divides by it. Keras's defaults: lr 0.001, epsilon 1e-7.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np

from xreg.core.checks import check_bool
from xreg.optimizers import _keras
from xreg.optimizers.base import Naive, Optimizer, closed_unit, formula_of, nonneg
from xreg.optimizers.link import Link


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        self.b1, self.b2, self.eps, self.amsgrad = o["beta_1"], o["beta_2"], o["epsilon"], flags["amsgrad"]
        self.m = self.v = self.vhat = None

    def step(self, theta, g, lr, t, decay=None):
        dt = theta.dtype.type
        if self.m is None:
            self.m, self.v, self.vhat = (np.zeros_like(theta) for _ in range(3))
        b1p, b2p = np.power(dt(self.b1), dt(t)), np.power(dt(self.b2), dt(t))
        alpha = lr * np.sqrt(1 - b2p) / (1 - b1p)
        self.m = self.m + (g - self.m) * dt(1 - self.b1)
        self.v = self.v + (g * g - self.v) * dt(1 - self.b2)
        v = self.v
        if self.amsgrad:
            self.vhat = np.maximum(self.vhat, self.v)
            v = self.vhat
        return theta - (self.m * alpha) / (np.sqrt(v) + dt(self.eps))


class AdamState(NamedTuple):
    count: Any
    m: Any
    v: Any
    vhat: Any


def keras_adam(beta_1, beta_2, epsilon, amsgrad: bool, lr_t, decoupled=None):
    """Keras Adam's step to subtract, ``m*alpha/(sqrt(v) + eps)`` (the module's equations, Keras's operation
    order, in the parameters' dtype), plus ``k*p`` of a decoupled decay ``p <- p - k*p`` run first."""
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import count, dtype_of, with_decay, zeros

    def init(params):
        return AdamState(count(), zeros(params), zeros(params), zeros(params))

    def update(updates, state, params=None):
        dt = dtype_of(updates)
        lr, t = jnp.asarray(lr_t, dt), (state.count + 1).astype(dt)
        alpha = lr * jnp.sqrt(1 - jnp.power(jnp.asarray(beta_2, dt), t)) / (1 - jnp.power(jnp.asarray(beta_1, dt), t))  # noqa: E501
        w1, w2, eps = (jnp.asarray(c, dt) for c in (1 - beta_1, 1 - beta_2, epsilon))  # Python floats, weak-typed into dt
        m = jax.tree.map(lambda m, g: m + (g - m) * w1, state.m, updates)
        v = jax.tree.map(lambda v, g: v + (jnp.square(g) - v) * w2, state.v, updates)
        vhat = jax.tree.map(jnp.maximum, state.vhat, v) if amsgrad else state.vhat
        d = jax.tree.map(lambda m, v: (m * alpha) / (jnp.sqrt(v) + eps), m, vhat if amsgrad else v)
        d = with_decay(d, decoupled, params, updates)
        return d, AdamState(optax.safe_increment(state.count), m, v, vhat)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    extra = {"decoupled": decoupled} if decoupled is not None else {}
    return [Link("twins.keras_adam", keras_adam, (o.wide["beta_1"], o.wide["beta_2"], o.wide["epsilon"], flags["amsgrad"], lr), extra)]


def naive(n: Naive) -> Link:
    """The optax a porter writes for Keras's Adam/AdamW: ``optax.adamw`` with its numbers (decoupled, times the lr)."""
    import optax

    o = n.options
    return Link("adamw", optax.adamw, (n.lr,), {"b1": o["beta_1"], "b2": o["beta_2"], "eps": o["epsilon"], "weight_decay": n.lam,
                                               **n.masked("mask")})  # fmt: skip


def _naive_cause(o, convention, all_decayed) -> str:
    return ("optax.adamw divides the bias-corrected moments, m_hat/(sqrt(v_hat) + eps), where Keras's Adam puts epsilon "
            "outside the correction (epsilon hat: eps*sqrt(1 - b2^t) in optax's terms)"
            + ("; and optax.adamw has no amsgrad" if o["amsgrad"] else ""))


def _torch_update(p, g, state, group, t):
    import torch

    b1, b2, eps = group["beta_1"], group["beta_2"], group["epsilon"]
    as_t = lambda x: torch.tensor(x, dtype=p.dtype)  # noqa: E731 (Keras: ops.cast(x, variable.dtype))
    alpha = group["lr"] * torch.sqrt(1 - torch.pow(as_t(b2), as_t(t))) / (1 - torch.pow(as_t(b1), as_t(t)))
    m, v = state["m"], state["v"]
    m.copy_(m + (g - m) * (1 - b1))
    v.copy_(v + (g * g - v) * (1 - b2))
    if group["amsgrad"]:
        torch.maximum(state["vhat"], v, out=state["vhat"])
        v = state["vhat"]
    p.sub_((m * alpha) / (torch.sqrt(v) + eps))


def _rule(name: str, keras_class: str, wd: float, order: int) -> Optimizer:
    return Optimizer(
        name, f"keras.{keras_class}", 0.001,
        {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False},
        {"beta_1": closed_unit, "beta_2": closed_unit, "epsilon": nonneg, "amsgrad": check_bool},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.adamw", naive_conventions=("decoupled",),
        naive_cause=_naive_cause,
        native_convention="decoupled", default_weight_decay=wd,
        own_step_size=True, counts_steps=lambda o: True,
        common=_keras.COMMON,
        framework="keras", keras_class=keras_class,
        torch_twin=lambda: _keras.torch_twin(_torch_update, ("m", "v", "vhat"), f"Keras{keras_class}"),
        twins=(keras_adam,) if name == "keras.adam" else (),
        order=order,
    )  # fmt: skip


OPTIMIZERS = (_rule("keras.adam", "Adam", 0.0, 1010), _rule("keras.adamw", "AdamW", 0.004, 1020))
