"""w <- w*(1 - lambd*eta_t) - eta_t*g; eta_1 = lr, eta_t = lr/(1 + lambd*lr*(t-1))^alpha (torch stores eta in its default dtype; the running average ax is not fed back into w)

torch.optim.ASGD. optax has none: the chain is ``add_decayed_weights(lambd)`` and a twin for torch's step size
eta, which torch keeps in its state: eta_1 is the lr of the first step, and after step t it is set from
that step's lr L: eta_{t+1} = L/(1 + lambd*L*t)^alpha in Python floats, made a tensor of torch's default
dtype by ``torch.as_tensor`` (xreg's torch runs set it to the run's dtype). eta takes the place of the lr:
the chain ends with ``scale(-1)``, and at lr_t = 0 torch still steps by eta_t.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

from xreg.core.checks import XregInputError
import numpy as np

from xreg.optimizers.base import Naive, Optimizer, float32_default, formula_of, nonneg
from xreg.optimizers.link import Link, chained


class Reference:
    """eta is rounded once to the run's dtype (torch's default dtype, set to the run's by xreg's torch runs);
    ``float32_eta`` (a diagnosis of a plain loop left at torch's float32 default): rounded to float32."""

    def __init__(self, o, flags, theta, layout=None):
        self.lambd, self.alpha = o["lambd"], o["alpha"]
        self.eta = None
        self.float32 = o.get("float32_eta", False)

    def _stored(self, eta, like):
        return float(np.float32(eta)) if self.float32 else type(like)(eta)  # torch.as_tensor(python float) in its default dtype

    def step(self, theta, g, lr, t, decay=None):
        eta = self._stored(float(lr), lr) if self.eta is None else self.eta
        theta = theta * (1 - self.lambd * eta) - eta * g
        wide = float(lr)
        self.eta = self._stored(wide / ((1 + self.lambd * wide * t) ** self.alpha), lr)
        return theta


class EtaState(NamedTuple):
    count: Any
    eta: Any


def scale_by_torch_asgd_eta(lambd, alpha, lr_t, decoupled=None):
    """torch ASGD's step size: the direction times ``eta_t`` (see the module). ``lr_t`` is this step's lr.

    ``decoupled``: a tree of ``k = lr_t*s`` where decoupled decay ``p <- p*(1 - k)`` runs before the
    step (as xreg's torch loop does); torch's ``p.mul_(1 - lambd*eta)`` then acts on the decayed p, so
    the direction gains ``k*(1 - lambd*eta)*p``.
    """
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import count, dtype_of, step_t, wide

    def init(params):
        return EtaState(count(), jnp.zeros([], dtype_of(params)))

    def update(updates, state, params=None):
        lr = jnp.asarray(lr_t, state.eta.dtype)
        eta = jnp.where(state.count == 0, lr, state.eta)
        t, wide_lr = step_t(state.count), wide(lr_t)
        next_eta = (wide_lr / (1 + wide(lambd) * wide_lr * t) ** wide(alpha)).astype(lr.dtype)
        d = jax.tree.map(lambda g: g * eta, updates)
        if decoupled is not None:
            d = jax.tree.map(lambda u, k, p: u + k * (1 - lambd * eta) * p, d, decoupled, params)
        return d, EtaState(optax.safe_increment(state.count), next_eta)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    """w <- w - eta_t*(g + lambd*w): lambd decays every parameter, eta replaces the lr."""
    import optax

    extra = {"decoupled": decoupled} if decoupled is not None else {}
    return [
        Link("add_decayed_weights", optax.add_decayed_weights, (o["lambd"],)),
        Link("twins.scale_by_torch_asgd_eta", scale_by_torch_asgd_eta, (o.wide["lambd"], o.wide["alpha"], lr), extra),
    ]


def naive(n: Naive) -> Link:
    import optax

    return chained(n.decay, Link("sgd", optax.sgd, (n.lr,)))


def _run_check(o: Mapping[str, Any], lr: float, steps: int) -> None:
    # torch: eta_t = lr / (1 + lambd*lr*t)**alpha in Python floats, which raises OverflowError
    try:
        denominator = (1 + o["lambd"] * lr * steps) ** o["alpha"]
    except OverflowError:
        denominator = math.inf
    if not math.isfinite(denominator):
        raise XregInputError(
            f"torch.optim.ASGD cannot run lambd={o['lambd']:g}, alpha={o['alpha']:g} with lr={lr:g} for {steps} steps: "
            "its step size lr/(1 + lambd*lr*t)**alpha overflows (torch raises OverflowError); use a smaller alpha or lambd."
        )


OPTIMIZERS = (
    Optimizer(
        "asgd", "ASGD", 1e-2,
        {"lambd": 1e-4, "alpha": 0.75, "t0": 1e6},
        {"lambd": nonneg, "alpha": nonneg, "t0": nonneg},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.sgd",
        naive_cause=lambda o, c, a: "optax has no ASGD: the lambd decay w*(1-lambd*eta_t) and the eta_t step-size schedule are dropped",
        # not momentum-free as the translations mean it: a coupled decay is scaled by eta_t, a decoupled one by
        # lr_t (and its product with lambd*eta_t), so the two are other rules
        own_step_size=True,
        run_check=_run_check,
        recorded=lambda o, meta: {**o, "float32_eta": float32_default(meta)}, roundings=("float32_eta",),
        notes=("float64 runs: torch keeps ASGD's eta in its default dtype (float32 unless the default dtype is set "
               "to float64 with torch.set_default_dtype), a relative 1e-8 rounding the optax chain does not make",),
        twins=(scale_by_torch_asgd_eta,),
        order=110,
        counts_steps=lambda o: True,  # the update reads t
    ),
)  # fmt: skip
