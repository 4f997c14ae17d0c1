"""Regularization conventions: each one stated once as math, and the maps between them.

Notation: ``w`` are the decayed parameters (the weight, and the bias when ``decay_bias``), ``g`` the
gradient of the *mean* data loss over a batch of ``m`` rows, ``lr_t`` the learning rate at step t and
``lr`` its base value, ``lam`` the user's regularization strength.

=============  ======================================================  ==============================
convention     update / objective                                      torch ``weight_decay`` equal
=============  ======================================================  ==============================
``torch``      ``g <- g + lam*w`` before the optimizer                 ``lam``
               (``torch.optim.SGD(weight_decay=lam)``; coupled L2)
``l2-loss``    minimise ``mean loss + lam/2*||w||^2`` by autodiff      ``lam``
``scratch``    ``g <- (sum_i grad_i + lam*w) / m = g + (lam/m)*w``     ``lam/m``
``decoupled``  ``w <- w - lr_t*lam*w`` outside the gradient            ``lam`` for momentum-free SGD
               (AdamW / ``decoupled_weight_decay=True``)               only; none otherwise
``none``       no regularization                                       ``0``
=============  ======================================================  ==============================

``decoupled`` has two schedule forms (``decoupled_scale``): ``'lr'`` multiplies the decay by the current
learning rate, as ``torch.optim.AdamW`` and ``optax.adamw`` do; ``'schedule'`` multiplies it by the
schedule multiplier ``eta_t = lr_t/lr`` only, as in Loshchilov & Hutter (2019), i.e. ``w <- w - eta_t*lam*w``.
Both are the one rule ``w <- w - lr_t*s*w`` with ``s = lam`` or ``s = lam/lr`` (:func:`decoupled_rate`).

Other conventions mapped to torch ``weight_decay`` (mean loss over ``n`` rows):
scikit-learn ``LogisticRegression(C)`` (lbfgs) is ``C*sum(loss) + 1/2*||w||^2`` with the intercept not
penalised, so ``weight_decay = 1/(C*n)`` on the weight and 0 on the bias; an L2 term in a *sum* loss
with learning rate ``eta`` equals a mean-loss run with ``lam/n`` and learning rate ``n*eta``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Convention:
    name: str
    formula: str
    summary: str


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in [
        Convention("torch", "g <- g + lam*w", "coupled weight decay, as torch.optim weight_decay"),
        Convention("l2-loss", "min mean(loss) + lam/2*||w||^2", "L2 term in a mean loss, autodiff"),
        Convention("scratch", "g <- (sum_i grad_i + lam*w)/m", "the from-scratch lam/m form"),
        Convention("decoupled", "w <- w - lr_t*lam*w", "decoupled decay (AdamW)"),
        Convention("none", "g <- g", "no regularization"),
    ]
}
NAMES: tuple[str, ...] = tuple(CONVENTIONS)


def gradient_coefficient(convention: str, lam: float, m: int) -> float:
    """``c`` such that the convention adds ``c*w`` to the mean data gradient of a batch of ``m`` rows.

    ``torch``: ``lam``; ``l2-loss``: ``lam`` (d/dw of ``lam/2*||w||^2``); ``scratch``: ``lam/m``;
    ``decoupled`` and ``none``: 0 (nothing enters the gradient).
    """
    if convention in ("torch", "l2-loss"):
        return lam
    if convention == "scratch":
        return lam / m
    return 0.0


def decoupled_rate(convention: str, lam: float, lr: float, decoupled_scale: str = "lr") -> float:
    """``s`` in ``w <- w - lr_t*s*w`` applied outside the gradient (0 unless ``decoupled``).

    ``decoupled_scale='lr'``: ``s = lam`` (torch AdamW, optax adamw: decay follows the scheduled lr);
    ``'schedule'``: ``s = lam/lr`` so that the decay is ``eta_t*lam*w`` with ``eta_t = lr_t/lr``.
    """
    if convention != "decoupled":
        return 0.0
    return lam if decoupled_scale == "lr" else lam / lr


def decay_factor(
    convention: str, lam: float, lr: float, m: int, optimizer: str = "sgd", decoupled_scale: str = "lr"
) -> float | None:
    """The factor the decay alone applies to ``w`` each step: ``1 - lr*c`` (None where an adaptive
    optimizer rescales a coupled decay, so no fixed factor exists). At or below 0 the decay
    overshoots zero and flips the sign of ``w`` every step."""
    s = decoupled_rate(convention, lam, lr, decoupled_scale)
    if s:
        return 1 - lr * s
    if optimizer in ("sgd", "asgd"):
        return 1 - lr * gradient_coefficient(convention, lam, m)
    return None


def l2_penalty(coefficient: float, sq_norm):
    """``coefficient/2 * ||w||^2``: its gradient is ``coefficient*w``. Works on floats and arrays."""
    return 0.5 * coefficient * sq_norm


def penalty(convention: str, lam: float, m: int, sq_norm):
    """The regularization term recorded beside the data loss at each step.

    For the coupled conventions it is the term whose gradient they add, ``l2_penalty(c, ||w||^2)``
    with ``c = gradient_coefficient``; ``decoupled`` records ``lam/2*||w||^2``, the L2 term it equals
    for momentum-free SGD; ``none`` records 0.
    """
    if convention == "decoupled":
        return l2_penalty(lam, sq_norm)
    return l2_penalty(gradient_coefficient(convention, lam, m), sq_norm)


@dataclass(frozen=True)
class TorchEquivalent:
    """The torch ``weight_decay`` that reproduces a run, or None with the reason there is none."""

    weight_decay: float | None
    note: str


def torch_weight_decay(
    convention: str,
    lam: float,
    batch_sizes: Sequence[int],
    lr: float,
    *,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    decoupled_scale: str = "lr",
) -> TorchEquivalent:
    """Map a run's regularization to the torch coupled ``weight_decay`` that gives the same updates."""
    if convention in ("torch", "l2-loss"):
        return TorchEquivalent(lam, f"{convention} lam={lam:.4g} == torch weight_decay={lam:.4g}")
    if convention == "none":
        return TorchEquivalent(0.0, "no regularization == torch weight_decay=0")
    if convention == "scratch":
        sizes = sorted(set(batch_sizes))
        if len(sizes) == 1:
            m = sizes[0]
            wd = lam / m
            return TorchEquivalent(wd, f"scratch lam={lam:.4g} with m={m} == torch weight_decay={wd:.4g}")
        return TorchEquivalent(
            None,
            f"scratch lam={lam:.4g} decays by lam/m with batch sizes m in {sizes}: "
            "no single torch weight_decay (each batch needs its own)",
        )
    # decoupled
    s = decoupled_rate(convention, lam, lr, decoupled_scale)
    if optimizer in ("sgd", "asgd") and momentum == 0.0:
        return TorchEquivalent(
            s, f"decoupled lam={lam:.4g} ({decoupled_scale}-scaled) == torch weight_decay={s:.4g} (momentum-free SGD)"
        )
    return TorchEquivalent(
        None,
        f"decoupled decay is not L2 for {optimizer}"
        + (f" with momentum={momentum:g}" if momentum else "")
        + ": no coupled weight_decay reproduces it",
    )


def lam_for_torch_weight_decay(
    convention: str, weight_decay: float, batch_sizes: Sequence[int], lr: float, decoupled_scale: str = "lr"
) -> float | None:
    """Inverse of :func:`torch_weight_decay`: the ``lam`` under ``convention`` that equals torch
    ``weight_decay`` (for ``decoupled``: momentum-free SGD only), or None when no single value does.

    ``scratch``: ``lam = weight_decay*m`` (one batch size m); ``decoupled``: ``weight_decay`` ('lr'
    scale) or ``weight_decay*lr`` ('schedule' scale, Loshchilov & Hutter).
    """
    if convention in ("torch", "l2-loss"):
        return weight_decay
    if convention == "scratch":
        sizes = set(batch_sizes)
        return weight_decay * sizes.pop() if len(sizes) == 1 else None
    if convention == "decoupled":
        return weight_decay if decoupled_scale == "lr" else weight_decay * lr
    return 0.0 if weight_decay == 0 else None


def torch_weight_decay_from_sklearn_C(C: float, n: int) -> float:
    """scikit-learn ``LogisticRegression(C)`` (lbfgs) on n rows == torch ``weight_decay=1/(C*n)`` on w, 0 on b."""
    return 1.0 / (C * n)


def sklearn_C_from_torch_weight_decay(weight_decay: float, n: int) -> float:
    """Inverse of :func:`torch_weight_decay_from_sklearn_C`."""
    return 1.0 / (weight_decay * n)
