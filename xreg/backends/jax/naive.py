"""The naive optax port of each torch optimizer: the obvious alias, with optax's own defaults.

This is what a user writes first when porting ``torch.optim.<Opt>(lr, weight_decay=lam, ...)``; the
comparator runs it beside the exact chain so the drift is measured. Each optimizer's module states its
alias (``naive``) and why it drifts, or that it is exact (``naive_cause``).
"""

from __future__ import annotations

from typing import Any, Mapping

import optax

from xreg import optimizers
from xreg.backends.jax.link import Link, Shown, mask_of
from xreg.core.structure import DEFAULT_GROUP, Structure
from xreg.optimizers.base import Naive
from xreg.semantics import conventions


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
    lam = hp["decay"][DEFAULT_GROUP]
    mask = mask_of(s, s.decayed)
    decay = Link("add_decayed_weights", optax.add_decayed_weights, (lam,), {"mask": mask} if mask else {})
    coupled = conventions.get(s.convention).coupled
    return optimizers.get(s.optimizer).naive(Naive(hp["options"], dict(s.flags), lr, lam, mask, coupled, decay))
