"""s = sign(g*g_prev); eta = etaplus if s > 0, etaminus if s < 0, 1 if s = 0; S <- clamp(S*eta, min, max) (S = lr before the first step: the lr is read once); g := 0 where s < 0; w <- w - sign(g)*S; g_prev <- g

torch.optim.Rprop (``etas = (etaminus, etaplus)``, ``step_sizes = (min, max)``). It takes no weight_decay:
L2 in the loss and a decoupled decay (a line of the loop) are its conventions. Its step sizes replace
the lr (the chain ends with ``scale(-1)``); a schedule does not change them. optax.rprop, the naive port,
returns the previous step's update (its first step is zero; optax PR #1725) and leaves the first step
size unclamped: the twin below keeps torch's order.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np

from xreg.core.checks import XregInputError, check_float
from xreg.optimizers.base import Naive, Optimizer, formula_of, pair
from xreg.optimizers.link import Link


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        (self.etaminus, self.etaplus), (self.smin, self.smax) = o["etas"], o["step_sizes"]
        self.prev, self.size = np.zeros_like(theta), None

    def step(self, theta, g, lr, t, decay=None):
        dt = theta.dtype.type
        if self.size is None:
            self.size = np.full_like(theta, lr)  # torch: full_like(grad, lr) at the first step, never read again
        s = np.sign(g * self.prev)
        eta = s.copy()
        eta[s > 0], eta[s < 0] = dt(self.etaplus), dt(self.etaminus)
        eta[eta == 0] = 1
        self.size = np.minimum(np.maximum(self.size * eta, dt(self.smin)), dt(self.smax))
        g = np.where(eta == dt(self.etaminus), 0, g)
        self.prev = g
        return theta - np.sign(g) * self.size


class RpropState(NamedTuple):
    count: Any
    prev: Any
    size: Any


def scale_by_torch_rprop(lr_t, etas, step_sizes, decoupled=None):
    """torch.optim.Rprop's step (the chain ends with ``scale(-1)``): step sizes start at the first step's
    lr, are scaled by etaplus / etaminus / 1 as g*g_prev is > 0, < 0 or 0 and clamped; where the sign
    flipped the gradient is zeroed (no step, and the next step's sign test reads 0). ``decoupled``: a tree
    of ``k = lr_t*s`` of a decoupled decay ``w <- w*(1 - k)`` before the step (the direction gains ``k*w``),
    or a function of the params that returns it (``xreg.twins.decay_rates``)."""
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import count, decays, leafwise, narrow, zeros

    (etaminus, etaplus), (smin, smax) = etas, step_sizes

    def init(params):
        return RpropState(count(), zeros(params), zeros(params))

    def update(updates, state, params=None):
        first = state.count == 0

        def leaf(g, prev, size, k, p):
            dt = g.dtype
            size = jnp.where(first, jnp.full_like(g, jnp.asarray(lr_t).astype(dt)), size)
            s = jnp.sign(g * prev)
            em = narrow(etaminus, dt)
            eta = jnp.where(s > 0, narrow(etaplus, dt), jnp.where(s < 0, em, jnp.where(s == 0, jnp.ones_like(s), s)))
            size = jnp.minimum(jnp.maximum(size * eta, narrow(smin, dt)), narrow(smax, dt))
            g = jnp.where(eta == em, jnp.zeros_like(g), g)
            d = jnp.sign(g) * size
            return (d if k is None else d + k * p), g, size

        ks = decays(decoupled, params, updates)
        moves, prev, size = leafwise(leaf, updates, state.prev, state.size, ks, ks if params is None else params)
        return moves, RpropState(optax.safe_increment(state.count), prev, size)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    w = o.wide
    extra = {"decoupled": decoupled} if decoupled is not None else {}
    return [Link("twins.scale_by_torch_rprop", scale_by_torch_rprop, (lr,), {"etas": tuple(w["etas"]), "step_sizes": tuple(w["step_sizes"]), **extra})]


def naive(n: Naive) -> Link:
    """optax.rprop with torch's values; the lam of an l2-loss run is in the loss, not the chain."""
    import optax

    (em, ep), (lo, hi) = n.options["etas"], n.options["step_sizes"]
    return Link("rprop", optax.rprop, (n.lr,), {"eta_minus": em, "eta_plus": ep, "min_step_size": lo, "max_step_size": hi})


def _etas(name: str, v: Any) -> tuple[float, float]:
    em, ep = pair(name, v)
    em, ep = check_float(f"{name}[0]", em), check_float(f"{name}[1]", ep)
    if not 0.0 < em < 1.0 < ep:  # torch: "Invalid eta values: {etas[0]}, {etas[1]}"
        raise XregInputError(f"The '{name}' parameter must be (etaminus, etaplus) with 0 < etaminus < 1 < etaplus "
                             f"(torch.optim.Rprop rule). Got {v!r} instead.")  # fmt: skip
    return (em, ep)


def _step_sizes(name: str, v: Any) -> tuple[float, float]:
    lo, hi = pair(name, v)
    lo, hi = check_float(f"{name}[0]", lo, 0.0), check_float(f"{name}[1]", hi, 0.0)
    if lo > hi:
        raise XregInputError(f"The '{name}' parameter must be (min, max) with min <= max. Got {v!r} instead.")
    return (lo, hi)


OPTIMIZERS = (
    Optimizer(
        "rprop", "Rprop", 1e-2,
        {"etas": (0.5, 1.2), "step_sizes": (1e-6, 50.0)},
        {"etas": _etas, "step_sizes": _step_sizes},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.rprop",
        naive_conventions=("l2-loss",),
        naive_cause=lambda o, c, a: ("optax.rprop returns the previous step's update (its first step is zero) and "
                                     "does not clamp the first step size lr into step_sizes (torch does)"),
        takes_weight_decay=False,
        sum_loss=lambda o, lr, M: {"lr": lr},  # it reads sign(g) and sign(g*g_prev) only: a gradient scaled by M steps alike
        own_step_size=True,
        twins=(scale_by_torch_rprop,),
        order=120,
    ),
)  # fmt: skip
