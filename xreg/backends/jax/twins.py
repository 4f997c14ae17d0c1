"""The optax twin of a torch rule every optimizer shares (``clip_grad_norm_``). Each optimizer's own twins
live in its module (:mod:`xreg.optimizers`).

* ``clip_grad_norm_``: torch scales by ``min(1, M/(||g||+1e-6))``; ``optax.clip_by_global_norm``
  has no 1e-6.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def torch_clip_grad_norm(max_norm) -> optax.GradientTransformation:
    """``g * min(1, max_norm/(||g||_2 + 1e-6))`` over all leaves (torch.nn.utils.clip_grad_norm_)."""

    def update(updates, state, params=None):
        norm = optax.tree.norm(updates)
        coef = jnp.minimum(max_norm / (norm + 1e-6), 1.0)
        return jax.tree.map(lambda g: g * coef.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)
