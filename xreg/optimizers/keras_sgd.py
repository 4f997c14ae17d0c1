"""m <- m*mu - g*lr; w <- w + (m*mu - g*lr) if nesterov else w + m (mu = 0: w <- w - g*lr); weight_decay: w <- w - w*wd*lr first

keras.optimizers.SGD (Keras 3, ``keras/src/optimizers/sgd.py``): the velocity ``m`` holds ``-lr*g`` terms, so the
lr of each step is inside it; torch's buffer ``b <- mu*b + g`` is scaled by the lr afterwards (``w <- w - lr*b``).
The two agree (round-off apart) while the lr is constant and part once it changes: a schedule's new lr multiplies
all of torch's buffer and only the newest term of Keras's. Keras has no dampening; its defaults: lr 0.01.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

from xreg.core.checks import check_bool
from xreg.optimizers import _keras
from xreg.optimizers.base import Naive, Optimizer, closed_unit, formula_of
from xreg.optimizers.link import Link, chained


class Reference:
    def __init__(self, o, flags, theta, layout=None):
        self.mu, self.nesterov = o["momentum"], flags["nesterov"]
        self.m = None

    def step(self, theta, g, lr, t, decay=None):
        if self.mu == 0:
            return theta - g * lr
        mu = theta.dtype.type(self.mu)
        self.m = (0 * theta if self.m is None else self.m) * mu - g * lr
        return theta + (self.m * mu - g * lr if self.nesterov else self.m)


class VelocityState(NamedTuple):
    m: Any


def keras_sgd(momentum, nesterov: bool, lr_t, decoupled=None):
    """Keras SGD's step to subtract: ``-(m*mu - g*lr)`` (nesterov) or ``-m`` with ``m <- m*mu - g*lr``; ``g*lr``
    without momentum; plus ``k*p`` of a decoupled decay ``p <- p - k*p`` run first (Keras's weight_decay)."""
    import jax
    import optax

    from xreg.optimizers._optax import dtype_of, with_decay, zeros

    def init(params):
        return VelocityState(zeros(params))

    def update(updates, state, params=None):
        lr = jax.numpy.asarray(lr_t, dtype_of(updates))  # Keras: ops.cast(learning_rate, variable.dtype)
        mu = jax.numpy.asarray(momentum, dtype_of(updates))
        m = jax.tree.map(lambda m, g: m * mu - g * lr, state.m, updates)
        if nesterov:
            d = jax.tree.map(lambda m, g: -(m * mu - g * lr), m, updates)
        else:
            d = jax.tree.map(lambda m: -m, m)
        d = with_decay(d, decoupled, params, updates)
        return d, VelocityState(m)

    return optax.GradientTransformation(init, update)


def keras_plain_sgd(lr_t, decoupled=None):
    """Keras SGD without momentum: ``g*lr`` to subtract (plus ``k*p`` of a decoupled decay run first)."""
    import jax
    import optax

    from xreg.optimizers._optax import dtype_of, with_decay

    def update(updates, state, params=None):
        lr = jax.numpy.asarray(lr_t, dtype_of(updates))
        return with_decay(jax.tree.map(lambda g: g * lr, updates), decoupled, params, updates), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    extra = {"decoupled": decoupled} if decoupled is not None else {}
    if not flags["momentum>0"]:
        return [Link("twins.keras_plain_sgd", keras_plain_sgd, (lr,), extra)]
    return [Link("twins.keras_sgd", keras_sgd, (o["momentum"], flags["nesterov"], lr), extra)]


def naive(n: Naive) -> Link:
    """The optax a porter writes for Keras's SGD: ``optax.sgd`` with its numbers, the weight decay added to the gradient."""
    import optax

    mu = n.options["momentum"] if n.flags["momentum>0"] else None
    return chained(n.decay, Link("sgd", optax.sgd, (n.lr,), {"momentum": mu, "nesterov": n.flags["nesterov"]}))


def _naive_cause(o, convention, all_decayed) -> str | None:
    if o["momentum"] == 0:  # w - lr*(g + wd*w) is Keras's w - w*wd*lr - g*lr, round-off apart
        return None
    return ("optax.sgd's trace keeps b <- mu*b + g and steps lr*b, Keras a velocity of -lr*g terms (they part once the lr "
            "changes); optax.add_decayed_weights before it adds the decay to the gradient, where Keras decays w first "
            "(w - w*wd*lr), outside the momentum")


def _torch_update(p, g, state, group, t):
    mu, lr = group["momentum"], group["lr"]
    if mu == 0:
        p.sub_(g * lr)
        return
    m = state["m"]
    m.copy_(m * mu - g * lr)
    p.add_(m * mu - g * lr if group["nesterov"] else m)


OPTIMIZERS = (
    Optimizer(
        "keras.sgd", "keras.SGD", 0.01,
        {"momentum": 0.0, "nesterov": False},
        {"momentum": closed_unit, "nesterov": check_bool},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.sgd", naive_conventions=("decoupled",),
        naive_cause=_naive_cause,
        native_convention="decoupled",
        flags=lambda o: {"momentum>0": o["momentum"] > 0},
        own_step_size=True,
        common=_keras.COMMON,
        framework="keras", keras_class="SGD",
        torch_twin=lambda: _keras.torch_twin(_torch_update, ("m",), "KerasSGD"),
        twins=(keras_sgd, keras_plain_sgd),
        order=1000,
    ),
)  # fmt: skip
