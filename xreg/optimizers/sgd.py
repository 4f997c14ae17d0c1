"""b <- g (t=1), b <- mu*b + (1-tau)*g (t>1); d <- g + mu*b if nesterov else b (d <- g when mu=0); w <- w - lr*d

torch.optim.SGD. optax.trace has no dampening, and ``chain(scale(1-tau), trace(mu))`` damps the first
buffer too (torch's ``b1 = g1`` is undamped): the twin below keeps torch's first step.
"""

from __future__ import annotations

from typing import Any, Mapping

from xreg.core.checks import XregInputError, check_bool
from xreg.optimizers.base import Naive, Optimizer, OptionCause, closed_unit, formula_of, unit
from xreg.optimizers.link import Link, chained


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        self.mu, self.tau, self.nesterov = o["momentum"], o["dampening"], flags["nesterov"]
        self.buf = None

    def step(self, theta, g, lr, t, decay=None):
        d = g
        if self.mu != 0:
            # first step: b <- g (not damped); then b <- mu*b + (1 - tau)*g
            self.buf = g.copy() if self.buf is None else self.mu * self.buf + (1 - self.tau) * g
            d = g + self.mu * self.buf if self.nesterov else self.buf
        return theta - lr * d


def scale_by_torch_sgd_momentum(momentum, dampening, nesterov: bool):
    """torch SGD momentum: ``b1 = g1``; ``b <- mu*b + (1-tau)*g``; ``d = g + mu*b`` (nesterov) or ``b``."""
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import BufferState, count, zeros

    def init(params):
        return BufferState(count(), zeros(params))

    def update(updates, state, params=None):
        first = state.count == 0
        buf = jax.tree.map(lambda g, b: jnp.where(first, g, momentum * b + (1 - dampening) * g), updates, state.buf)
        d = jax.tree.map(lambda g, b: g + momentum * b, updates, buf) if nesterov else buf
        return d, BufferState(optax.safe_increment(state.count), buf)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    import optax

    if not flags["momentum>0"]:
        return []
    if not flags["dampening>0"]:
        return [Link("trace", optax.trace, kwargs={"decay": o["momentum"], "nesterov": flags["nesterov"]})]
    return [Link("twins.scale_by_torch_sgd_momentum", scale_by_torch_sgd_momentum, (o["momentum"],),
                 {"dampening": o["dampening"], "nesterov": flags["nesterov"]})]  # fmt: skip


def naive(n: Naive) -> Link:
    import optax

    mu = n.options["momentum"] if n.flags["momentum>0"] else None
    return chained(n.decay, Link("sgd", optax.sgd, (n.lr,), {"momentum": mu, "nesterov": n.flags["nesterov"]}))


def _cross(o: Mapping[str, Any]) -> None:
    # torch.optim.SGD raises "Nesterov momentum requires a momentum and zero dampening".
    if o["nesterov"] and (o["momentum"] <= 0 or o["dampening"] != 0):
        raise XregInputError(
            "The 'nesterov' parameter requires momentum > 0 and dampening = 0 "
            f"(torch.optim.SGD rule). Got momentum={o['momentum']!r}, dampening={o['dampening']!r}."
        )


def _dampening_causes(o: Mapping[str, Any]) -> list[OptionCause]:
    """SGD momentum with dampening in one run only: off where the base damps, fitted where it does not."""
    if o["momentum"] <= 0:
        return []
    tau, mu = o["dampening"], o["momentum"]
    if tau:
        return [OptionCause("momentum-dampening", "no dampening", overrides={"dampening": 0.0}, fixes=lambda o, x: (
            "dampening=0", f"damp the momentum: xreg.twins.scale_by_torch_sgd_momentum({mu:g}, dampening={tau:g}, nesterov=False)"))]
    if o["nesterov"]:
        return []
    return [OptionCause("momentum-dampening", "dampening {x}", fit="dampening", x0=0.5, bounds=(0.0, 1.0),
                        fixes=lambda o, x: (f"dampening={x:.6g}", "dampening=0 (optax.trace has none)"))]  # fmt: skip


OPTIMIZERS = (
    Optimizer(
        "sgd", "SGD", 1e-3,
        {"momentum": 0.0, "dampening": 0.0, "nesterov": False},
        {"momentum": unit, "dampening": closed_unit, "nesterov": check_bool},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.sgd",
        naive_cause=lambda o, c, a: "optax.sgd has no dampening: its buffer is mu*b + g, torch's mu*b + (1-tau)*g" if o["dampening"] else None,
        cross_checks=(_cross,),
        flags=lambda o: {"momentum>0": o["momentum"] > 0, "dampening>0": o["dampening"] > 0},
        momentum_free=lambda o: o["momentum"] == 0,
        plain=lambda o: o["momentum"] == 0,
        coupled_through="momentum",
        option_causes=_dampening_causes,
        sum_loss=lambda o, lr, M: {"lr": lr / M},
        fused=True,
        twins=(scale_by_torch_sgd_momentum,),
        order=10,
    ),
)  # fmt: skip
