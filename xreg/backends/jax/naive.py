"""The naive optax port of each torch optimizer: the obvious alias, with optax's own defaults.

This is what a user writes first when porting ``torch.optim.<Opt>(lr, weight_decay=lam, ...)``; the
comparator runs it beside the exact chain so the drift is measured. Why each drifts (or that it is
exact) is stated in the optimizer table (:func:`xreg.semantics.optimizers.naive_cause`).
"""

from __future__ import annotations

from typing import Any, Mapping

import optax
import optax.contrib

from xreg.backends.jax.link import Link, Shown, mask_of
from xreg.core.structure import DEFAULT_GROUP, Structure
from xreg.semantics import conventions, optimizers


def naive_link(s: Structure, hp: Mapping[str, Any], lr: Any) -> Link:
    """The naive chain as one link (its text names the aliases used). optax has no ``maximize``: a user
    negates the gradient first (``optax.scale(-1)``), so the decay after it still pulls toward 0."""
    link = _alias(s, hp, lr)
    if not s.flag("maximize"):
        return link
    return Link("chain", lambda *ls: optax.chain(*(x.transform for x in ls)),
                (Shown(Link("scale", optax.scale, (-1.0,)), "scale(-1.0)"), Shown(link, link.text)))  # fmt: skip


def _alias(s: Structure, hp: Mapping[str, Any], lr: Any) -> Link:
    optimizers.check_naive(s.optimizer, s.convention)
    o, lam, name = hp["options"], hp["decay"][DEFAULT_GROUP], s.optimizer
    mask = mask_of(s, s.decayed)
    decay = Link("add_decayed_weights", optax.add_decayed_weights, (lam,), {"mask": mask} if mask else {})
    coupled = conventions.get(s.convention).coupled
    mu = o.get("momentum") if s.flag("momentum>0") else None
    b1, b2 = o.get("betas", (None, None))
    eps = o.get("eps")

    def chain(*parts: Link) -> Link:
        return Link("chain", lambda *ls: optax.chain(*(link.transform for link in ls)), tuple(Shown(p, p.text) for p in parts))

    alias = {
        "sgd": lambda: chain(decay, Link("sgd", optax.sgd, (lr,), {"momentum": mu, "nesterov": s.flag("nesterov")})),
        "rmsprop": lambda: chain(decay, Link("rmsprop", optax.rmsprop, (lr,), {"momentum": mu, "centered": s.flag("centered")})),
        "adagrad": lambda: chain(decay, Link("adagrad", optax.adagrad, (lr,))),
        "adamax": lambda: chain(decay, Link("adamax", optax.adamax, (lr, b1, b2), {"eps": eps})),
        "adadelta": lambda: Link("adadelta", optax.adadelta, (), {"rho": o.get("rho"), "eps": eps, "weight_decay": lam,
                                                                   **({"weight_decay_mask": mask} if mask else {})}),
        "asgd": lambda: chain(decay, Link("sgd", optax.sgd, (lr,))),
        "muon": lambda: Link("contrib.muon", optax.contrib.muon, (lr,), {
            "ns_coeffs": tuple(o["ns_coefficients"]), "ns_steps": s.flag("ns_steps"), "beta": o["momentum"],
            "eps": o["eps"], "weight_decay": lam, **({"weight_decay_mask": mask} if mask else {}),
            "nesterov": s.flag("nesterov"), "adam_weight_decay": lam}),
        "adafactor": lambda: Link("adafactor", optax.adafactor, (lr,), {
            "decay_rate": -o["beta2_decay"], "clipping_threshold": o["d"], "weight_decay_rate": lam,
            **({"weight_decay_mask": mask} if mask else {})}),
    }  # fmt: skip
    if name in ("adam", "adamw"):
        if s.flag("amsgrad"):
            if coupled:
                return chain(decay, Link("amsgrad", optax.amsgrad, (lr, b1, b2), {"eps": eps}))
            return chain(Link("scale_by_amsgrad", optax.scale_by_amsgrad, (b1, b2), {"eps": eps}), decay,
                         Link("scale_by_learning_rate", optax.scale_by_learning_rate, (lr,)))  # fmt: skip
        return Link("adamw", optax.adamw, (lr, b1, b2), {"eps": eps, "weight_decay": lam})
    if name == "nadam":
        if coupled:
            return chain(decay, Link("nadam", optax.nadam, (lr, b1, b2), {"eps": eps}))
        return Link("nadamw", optax.nadamw, (lr, b1, b2), {"eps": eps, "weight_decay": lam, "mask": mask})
    if name == "radam":
        if coupled:
            return chain(decay, Link("radam", optax.radam, (lr, b1, b2), {"eps": eps}))
        return chain(Link("scale_by_radam", optax.scale_by_radam, (b1, b2), {"eps": eps}), decay,
                     Link("scale_by_learning_rate", optax.scale_by_learning_rate, (lr,)))  # fmt: skip
    return alias[name]()

