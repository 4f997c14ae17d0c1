"""Gradient clipping: torch's forms, the optax forms a porter writes first, and what differs, in ONE table.

torch (what the torch backend runs; JAX and NumPy reproduce it):

==========================  =============================================================  =====================================
``--clip-norm M``           ``g <- g * min(1, M / (||g||_p + 1e-6))`` over all parameters   ``clip_grad_norm_(params, M, p)``
``--clip-norm-type P``      ``||g||_p`` of the per-tensor p-norms (2 default; ``inf``: max)  ``norm_type=P``
``--clip-per-parameter``    each tensor by its own norm (Keras ``clipnorm``'s shape)          ``for p in params: clip_grad_norm_(p, M)``
``--clip-value V``          ``g <- clamp(g, -V, V)``                                         ``clip_grad_value_(params, V)``
==========================  =============================================================  =====================================

The clipping acts on the data gradient (with a scratch decay already in it) before torch's coupled
``weight_decay`` is added inside ``step()`` (:mod:`xreg.core.recipe`). The naive port's differences
(``--naive-clip CODE``) are :data:`NAIVE`.

``--clip-error-if-nonfinite`` is torch's ``error_if_nonfinite=True``: at a step whose total norm is nan or inf torch
raises before it changes a gradient, and the run stops there (NumPy checks the same norm and stops; JAX's scan cannot
stop, but its step with a non-finite norm makes the parameters non-finite, so every backend ends at that step).
optax has no such option: ``clip_by_global_norm`` goes on with nan updates, and a port checks
``jnp.isfinite(optax.global_norm(grads))`` outside ``jit`` to stop as torch does.
"""

from __future__ import annotations

import math

from xreg.semantics.naive import Difference, table

NORM, VALUE = "norm", "value"

class Stopped(Exception):
    """A step whose total norm is nan or inf under error_if_nonfinite: the run ends before it (``loss``, ``penalty``:
    the step's recorded loss and penalty, computed before the clipping)."""

    def __init__(self, loss: float, penalty: float):
        super().__init__(STOPPED)
        self.loss, self.penalty = loss, penalty


STOPPED = ("torch's clip_grad_norm_ raised (error_if_nonfinite=True): the total norm of the gradients is non-finite, "
           "so the run stops before this step")

NAIVE: dict[str, Difference] = table(
    Difference("clip-eps", "optax.clip_by_global_norm(M) scales by M/||g|| where torch's clip_grad_norm_ scales by "
              "M/(||g|| + 1e-6): a relative 1e-6/||g|| on every clipped step", "optax.clip_by_global_norm(M)"),
    Difference("clip-order", "the decay added to the gradient before the clipping (optax.chain(add_decayed_weights(lam), "
              "clip, ...)), where torch clips first and adds weight_decay inside step()",
              "optax.chain(optax.add_decayed_weights(lam), <clip>, <optimizer>)"),
)  # fmt: skip
CODES: tuple[str, ...] = tuple(NAIVE)


def norm_text(norm_type: float) -> str:
    return "inf" if math.isinf(norm_type) else f"{norm_type:g}"


def text(kind: str, threshold: float, norm_type: float = 2.0, per_parameter: bool = False, error: bool = False) -> str:
    """The clipping as the torch call that does it."""
    if kind == VALUE:
        return f"clip_grad_value_(params, {threshold:g})"
    p = ("" if norm_type == 2.0 else f", norm_type={norm_text(norm_type)}") + (", error_if_nonfinite=True" if error else "")
    return f"{'for p in params: clip_grad_norm_(p' if per_parameter else 'clip_grad_norm_(params'}, {threshold:g}{p})"


def blocked(code: str, kind: str, norm_type: float, per_parameter: bool, coupled_decay: bool) -> str | None:
    """Why the naive clipping ``code`` cannot apply to this run (None: it applies, and acts)."""
    if not kind:
        return "the run does not clip (--clip-norm or --clip-value)"
    if code == "clip-eps":
        if kind != NORM or norm_type != 2.0 or per_parameter:
            return "optax.clip_by_global_norm is the global 2-norm clipping (--clip-norm without --clip-norm-type or --clip-per-parameter)"
        return None
    if not coupled_decay:
        return "no coupled decay is added to the gradient after the clipping here (torch's weight_decay with lam > 0)"
    return None
