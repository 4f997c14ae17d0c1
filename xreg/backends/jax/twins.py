"""The optax twin of a torch rule every optimizer shares (``clip_grad_norm_``; ``clip_grad_value_`` is stock
``optax.clip``). Each optimizer's own twins
live in its module (:mod:`xreg.optimizers`).

* ``clip_grad_norm_``: torch scales by ``min(1, M/(||g||_p+1e-6))``; ``optax.clip_by_global_norm``
  has no 1e-6 and only p = 2 (``clip_grad_value_`` is ``optax.clip``, exactly).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def torch_clip_grad_norm(max_norm, norm_type: float = 2.0, per_parameter: bool = False,
                         error_if_nonfinite: bool = False) -> optax.GradientTransformation:  # fmt: skip
    """``g * min(1, max_norm/(||g||_p + 1e-6))`` over all leaves (torch.nn.utils.clip_grad_norm_), ``||g||_p`` the
    p-norm of the leaves' p-norms (inf: the largest |g|); ``per_parameter``: each leaf by its own norm.
    ``error_if_nonfinite``: where torch raises (a norm is nan or inf) the updates are nan, so the parameters are
    from that step on; jit cannot raise (outside it, check ``jnp.isfinite(optax.global_norm(grads))`` and stop)."""

    def norm(leaves):
        if norm_type == float("inf"):
            return jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in leaves]))
        if norm_type == 2.0:
            return optax.tree.norm(leaves)
        return jnp.sum(jnp.stack([jnp.sum(jnp.abs(g) ** norm_type) for g in leaves])) ** (1.0 / norm_type)

    def clip(leaves):
        coef = jnp.minimum(max_norm / (norm(leaves) + 1e-6), 1.0)
        return [g * coef.astype(g.dtype) for g in leaves]

    def update(updates, state, params=None):
        leaves, tree = jax.tree.flatten(updates)
        clipped = [clip([g])[0] for g in leaves] if per_parameter else clip(leaves)
        if error_if_nonfinite:
            ok = jnp.all(jnp.stack([jnp.isfinite(norm([g])) for g in leaves])) if per_parameter else jnp.isfinite(norm(leaves))
            clipped = [jnp.where(ok, g, jnp.nan) for g in clipped]
        return jax.tree.unflatten(tree, clipped), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)
