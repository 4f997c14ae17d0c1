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
    """The naive chain as one link (its text names the aliases used): the clipping first, as a porter chains it
    before the alias (torch's twin, or the naive codes' forms: ``clip_by_global_norm``, the decay before the
    clip), then the alias. optax has no ``maximize``: a user negates the gradient first (``optax.scale(-1)``),
    so the decay after it still pulls toward 0."""
    from xreg.backends.jax.chain import clip_link

    first: list[Link] = []
    if s.clip and "clip-order" in s.naive_clip:  # the decay in the gradient before the clipping; the alias decays no more
        first.append(_decay(s, hp))
        hp = {**hp, "decay": {k: 0.0 * v for k, v in hp["decay"].items()}}
    if s.clip:
        first.append(clip_link(s, hp, naive=True))
    link = _alias(s, hp, lr)
    if s.flag("maximize"):
        first.insert(0, Link("scale", optax.scale, (-1.0,)))
    if not first:
        return link
    return Link("chain", lambda *ls: optax.chain(*(x.transform for x in ls)), tuple(Shown(x, x.text) for x in (*first, link)))


def _decay(s: Structure, hp: Mapping[str, Any]) -> Link:
    mask = mask_of(s, s.decayed)
    return Link("add_decayed_weights", optax.add_decayed_weights, (hp["decay"][DEFAULT_GROUP],), {"mask": mask} if mask else {})


def _alias(s: Structure, hp: Mapping[str, Any], lr: Any) -> Link:
    optimizers.check_naive(s.optimizer, s.convention)
    lam = hp["decay"][DEFAULT_GROUP]
    mask = mask_of(s, s.decayed)
    decay = _decay(s, hp)
    coupled = conventions.get(s.convention).coupled
    return optimizers.get(s.optimizer).naive(Naive(hp["options"], dict(s.flags), lr, lam, mask, coupled, decay))
