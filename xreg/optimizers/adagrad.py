"""S <- S + g^2 (S0 = initial_accumulator_value); w <- w - lr/(1+(t-1)*lr_decay) * g/(sqrt(S) + eps)

torch.optim.Adagrad: g/(sqrt(S)+eps), eps outside the root, S0 settable (default 0); optax.scale_by_rss is
rsqrt(S + eps) with S0=0.1, so the twin below keeps torch's. lr_decay lives in the chain as a schedule.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from xreg.optimizers.base import Naive, Optimizer, formula_of, nonneg
from xreg.optimizers.link import Link, Shown, chained, text_of


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        self.lr_decay, self.eps = o["lr_decay"], o["eps"]
        self.S = np.full_like(theta, o["initial_accumulator_value"])
        self.eps_in_sqrt = o.get("eps_in_sqrt", False)  # optax's form, for a diagnosis only

    def step(self, theta, g, lr, t, decay=None):
        clr = lr / (1 + (t - 1) * self.lr_decay)
        self.S = self.S + g * g
        avg = np.sqrt(self.S + self.eps) if self.eps_in_sqrt else np.sqrt(self.S) + self.eps
        return theta - clr * (g / avg)


def scale_by_torch_adagrad(initial_accumulator_value, eps):
    """``S <- S + g^2`` from ``S0``; ``d = g/(sqrt(S) + eps)`` (lr_decay lives in the lr schedule)."""
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import BufferState, count

    def init(params):
        return BufferState(count(), jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params))

    def update(updates, state, params=None):
        S = jax.tree.map(lambda s, g: s + g * g, state.buf, updates)
        d = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, S)
        return d, BufferState(optax.safe_increment(state.count), S)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    import optax

    S0, eps, decay = o["initial_accumulator_value"], o["eps"], o["lr_decay"]
    links = [Link("twins.scale_by_torch_adagrad", scale_by_torch_adagrad, kwargs={"initial_accumulator_value": S0, "eps": eps})]
    if flags["lr_decay>0"]:
        code = f"lambda count: 1 / (1 + count * {decay!r})" if isinstance(decay, float) else None
        links.append(Link("scale_by_schedule", optax.scale_by_schedule,
                          (Shown(lambda c: 1 / (1 + c * decay), f"1/(1 + count*{text_of(decay)})", code),)))  # fmt: skip
    return links


def naive(n: Naive) -> Link:
    import optax

    return chained(n.decay, Link("adagrad", optax.adagrad, (n.lr,)))


def naive_cause(o: Mapping[str, Any], convention: str, all_decayed: bool) -> str:
    return (f"optax.adagrad starts the accumulator at 0.1 (torch {o['initial_accumulator_value']}) and uses "
            f"eps=1e-7 inside the root (torch eps={o['eps']} outside)" + ("; it has no lr_decay" if o["lr_decay"] else ""))  # fmt: skip


def sum_loss(o: Mapping[str, Any], lr: float, M: int) -> dict[str, float]:
    """g scaled by M scales S by M^2: eps and the initial accumulator follow."""
    return {"lr": lr, "eps": o["eps"] * M, "initial_accumulator_value": o["initial_accumulator_value"] * M * M}


OPTIMIZERS = (
    Optimizer(
        "adagrad", "Adagrad", 1e-2,
        {"lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
        {"lr_decay": nonneg, "initial_accumulator_value": nonneg, "eps": nonneg},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.adagrad", naive_cause=naive_cause,
        flags=lambda o: {"lr_decay>0": o["lr_decay"] > 0},
        alias_defaults=(
            ("optax.adagrad defaults: initial_accumulator_value=0.1, eps=1e-7 inside the root",
             {"initial_accumulator_value": 0.1, "eps": 1e-7, "eps_in_sqrt": True}),
            ("initial_accumulator_value=0.1 (optax.adagrad's default)", {"initial_accumulator_value": 0.1}),
        ),
        sum_loss=sum_loss, fused=True, twins=(scale_by_torch_adagrad,),
        order=40,
        counts_steps=lambda o: o["lr_decay"] > 0,  # the update reads t
    ),
)  # fmt: skip
