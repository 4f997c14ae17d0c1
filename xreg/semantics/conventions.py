"""Regularization conventions: each one stated once as math, and the maps between them.

Each convention is data: *where* its term enters one update and *with which coefficient*. From that,
:mod:`xreg.core.recipe` builds the ordered steps of an update, which every backend realizes; no
backend branches on a convention's name.

Notation: ``w`` are the decayed parameters (every parameter not excluded by ``--no-decay``), ``g`` the
gradient of the *mean* data loss over a batch of ``m`` rows, ``lr_t`` the learning rate at step t and
``lr`` its base value, ``lam`` the user's regularization strength.

=============  ======================================================  ==============================
convention     update / objective                                      torch ``weight_decay`` equal
=============  ======================================================  ==============================
``coupled``    ``g <- g + lam*w`` before the optimizer                 ``lam``
               (``torch.optim.SGD(weight_decay=lam)``; coupled L2)
``l2-loss``    minimise ``mean loss + lam/2*||w||^2`` by autodiff      ``lam``
``l2-sum``     minimise ``mean loss + lam*||w||^2`` (no 1/2: Keras     ``2*lam``
               ``regularizers.L2(lam)``, many scratch losses)
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

# Where a convention's term enters one update, in the order an update runs.
LOSS = "loss"  # a penalty term in the loss, differentiated by autodiff
GRADIENT = "gradient"  # added to the data gradient before clipping
CLIPPED = "clipped gradient"  # added to the gradient after clipping, before the optimizer's direction
DIRECTION = "direction"  # added after the optimizer's direction, so it is scaled by lr_t only
NOWHERE = "nowhere"
PLACES = (LOSS, GRADIENT, CLIPPED, DIRECTION, NOWHERE)
# Under torch's maximize=True the step negates the gradient it is handed: a term that entered before
# the step (a penalty in the loss, a decay added to the gradient by hand) is negated with it.
NEGATED_BY_MAXIMIZE = (LOSS, GRADIENT)


def sign_under(convention: str, maximize: bool) -> float:
    """-1 where ``maximize`` negates the convention's term with the gradient (it then pushes w away from 0), else 1."""
    return -1.0 if maximize and get(convention).enters in NEGATED_BY_MAXIMIZE else 1.0

# Coefficients, as functions of the group's strength lam, the batch's row count m and the base lr.
COEFFICIENTS = {
    "lam": lambda lam, m, lr: lam,
    "lam/m": lambda lam, m, lr: lam / m,
    "lam/lr": lambda lam, m, lr: lam / lr,
    "2lam": lambda lam, m, lr: 2 * lam,
    "0": lambda lam, m, lr: 0.0 * lam,
}


@dataclass(frozen=True)
class Convention:
    name: str
    formula: str
    summary: str
    enters: str  # one of PLACES
    coefficient: str  # key of COEFFICIENTS: the c in "c*w" (or c/2*||w||^2 in the loss)
    penalty: str  # coefficient of the recorded penalty c/2*||w||^2
    coupled: bool  # its term is part of the gradient (so it is L2 for every optimizer)
    schedule_coefficient: str | None = None  # decoupled with decoupled_scale='schedule': lam/lr


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in [
        Convention("coupled", "g <- g + lam*w", "coupled weight decay, as torch.optim weight_decay",
                   CLIPPED, "lam", "lam", True),
        Convention("l2-loss", "min mean(loss) + lam/2*||w||^2", "L2 term in a mean loss, autodiff",
                   LOSS, "lam", "lam", True),
        Convention("l2-sum", "min mean(loss) + lam*||w||^2", "L2 without the 1/2 (Keras L2(l2), many scratch losses)",
                   LOSS, "2lam", "2lam", True),
        Convention("scratch", "g <- (sum_i grad_i + lam*w)/m", "the from-scratch lam/m form",
                   GRADIENT, "lam/m", "lam/m", True),
        Convention("decoupled", "w <- w - lr_t*lam*w", "decoupled decay (AdamW)",
                   DIRECTION, "lam", "lam", False, schedule_coefficient="lam/lr"),
        Convention("none", "g <- g", "no regularization", NOWHERE, "0", "0", True),
    ]
}  # fmt: skip
NAMES: tuple[str, ...] = tuple(CONVENTIONS)
# Earlier spellings, accepted wherever a convention is named: 'torch' was 'coupled' until issue 21 (a run
# labelled torch/torch read as two backends).
ALIASES = {"torch": "coupled"}


def canonical(name: str) -> str:
    """``name`` with an earlier spelling replaced by today's (``torch`` -> ``coupled``)."""
    return ALIASES.get(name, name) if isinstance(name, str) else name


def get(name: str) -> Convention:
    return CONVENTIONS[canonical(name)]


def coefficient_form(convention: str, decoupled_scale: str = "lr") -> str:
    """The coefficient key of ``convention`` (decoupled: 'lam' for the lr scale, 'lam/lr' for the schedule scale)."""
    c = get(convention)
    if c.schedule_coefficient and decoupled_scale == "schedule":
        return c.schedule_coefficient
    return c.coefficient


def coefficient(form: str, lam, m=1, lr=1.0):
    """Evaluate a coefficient key; works on floats and on arrays of any framework."""
    return COEFFICIENTS[form](lam, m, lr)


def gradient_coefficient(convention: str, lam: float, m: int) -> float:
    """``c`` such that the convention adds ``c*w`` to the mean data gradient of a batch of ``m`` rows.

    ``coupled``: ``lam``; ``l2-loss``: ``lam`` (d/dw of ``lam/2*||w||^2``); ``scratch``: ``lam/m``;
    ``decoupled`` and ``none``: 0 (nothing enters the gradient).
    """
    c = get(convention)
    return coefficient(c.coefficient, lam, m) if c.coupled else 0.0


def decoupled_rate(convention: str, lam: float, lr: float, decoupled_scale: str = "lr") -> float:
    """``s`` in ``w <- w - lr_t*s*w`` applied outside the gradient (0 unless the term enters after the direction).

    ``decoupled_scale='lr'``: ``s = lam`` (torch AdamW, optax adamw: decay follows the scheduled lr);
    ``'schedule'``: ``s = lam/lr`` so that the decay is ``eta_t*lam*w`` with ``eta_t = lr_t/lr``.
    """
    if get(convention).enters != DIRECTION:
        return 0.0
    return coefficient(coefficient_form(convention, decoupled_scale), lam, 1, lr)


def decay_factor(
    convention: str, lam: float, lr: float, m: int, momentum_free: bool = True, decoupled_scale: str = "lr"
) -> float | None:
    """The factor the decay alone applies to ``w`` each step: ``1 - lr*c`` (None where an adaptive or
    momentum optimizer rescales a coupled decay, so no fixed factor exists). At or below 0 the decay
    overshoots zero and flips the sign of ``w`` every step."""
    s = decoupled_rate(convention, lam, lr, decoupled_scale)
    if s:
        return 1 - lr * s
    if momentum_free:
        return 1 - lr * gradient_coefficient(convention, lam, m)
    return None


def l2_penalty(coefficient: float, sq_norm):
    """``coefficient/2 * ||w||^2``: its gradient is ``coefficient*w``. Works on floats and arrays."""
    return 0.5 * coefficient * sq_norm


def penalty(convention: str, lam, m, sq_norm):
    """The regularization term recorded beside the data loss at each step.

    For the coupled conventions it is the term whose gradient they add, ``l2_penalty(c, ||w||^2)``
    with ``c = gradient_coefficient``; ``decoupled`` records ``lam/2*||w||^2``, the L2 term it equals
    for momentum-free SGD; ``none`` records 0.
    """
    return l2_penalty(coefficient(get(convention).penalty, lam, m), sq_norm)


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
    optimizer: str = "the optimizer",
    momentum_free: bool = True,
    momentum: float = 0.0,
    decoupled_scale: str = "lr",
    maximize: bool = False,
    takes_weight_decay: bool = True,
    clipped: bool = False,
) -> TorchEquivalent:
    """Map a run's regularization to the torch coupled ``weight_decay`` that gives the same updates
    (``clipped``: the run clips its gradient, so a term added before the clipping is clipped with it)."""
    c = get(convention)
    if c.enters == NOWHERE or lam == 0:
        return TorchEquivalent(0.0, "no regularization == torch weight_decay=0")
    if clipped and c.enters in (LOSS, GRADIENT):
        return TorchEquivalent(None, f"the {convention} term enters before the clipping and is clipped with the gradient; torch's "
                                     "weight_decay is added after clip_grad_norm_ (inside step()): none reproduces it")
    if not takes_weight_decay:
        where = {LOSS: "a term of the loss", DIRECTION: "a line of the loop (w <- w - lr*lam*w before each step)"}.get(
            c.enters, "a line of the loop (added to the gradient)")
        return TorchEquivalent(None, f"{optimizer} takes no weight_decay: the {convention} lam={lam:.4g} is {where}, not an argument")
    if sign_under(convention, maximize) < 0:
        return TorchEquivalent(None, f"under maximize=True the {convention} term is negated with the gradient and "
                                     "pushes w away from 0; torch's weight_decay still pulls toward 0: none reproduces it")
    if c.coupled and c.coefficient == "lam":
        return TorchEquivalent(lam, f"{convention} lam={lam:.4g} == torch weight_decay={lam:.4g}")
    if c.coupled and c.coefficient == "2lam":  # lam*||w||^2 has the gradient 2*lam*w
        return TorchEquivalent(2 * lam, f"{convention} lam={lam:.4g} (no 1/2) == torch weight_decay={2 * lam:.4g}")
    if c.coupled:  # lam/m: one value per batch size
        sizes = sorted(set(batch_sizes))
        if len(sizes) == 1:
            m = sizes[0]
            wd = lam / m
            return TorchEquivalent(wd, f"{convention} lam={lam:.4g} with m={m} == torch weight_decay={wd:.4g}")
        return TorchEquivalent(
            None,
            f"{convention} lam={lam:.4g} decays by lam/m with batch sizes m in {sizes}: "
            "no single torch weight_decay (each batch needs its own)",
        )
    s = decoupled_rate(convention, lam, lr, decoupled_scale)
    if momentum_free:
        return TorchEquivalent(
            s, f"{convention} lam={lam:.4g} ({decoupled_scale}-scaled) == torch weight_decay={s:.4g} (momentum-free SGD)"
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

    ``scratch``: ``lam = weight_decay*m`` (one batch size m); ``l2-sum``: ``weight_decay/2``; ``decoupled``:
    ``weight_decay`` ('lr' scale) or ``weight_decay*lr`` ('schedule' scale, Loshchilov & Hutter).
    """
    c = get(convention)
    if c.enters == NOWHERE:
        return 0.0 if weight_decay == 0 else None
    form = coefficient_form(convention, decoupled_scale)
    if form == "lam":
        return weight_decay
    if form == "lam/lr":
        return weight_decay * lr
    if form == "2lam":
        return weight_decay / 2
    sizes = set(batch_sizes)  # lam/m
    return weight_decay * sizes.pop() if len(sizes) == 1 else None


def torch_weight_decay_from_sklearn_C(C: float, n: int) -> float:
    """scikit-learn ``LogisticRegression(C)`` (lbfgs) on n rows == torch ``weight_decay=1/(C*n)`` on w, 0 on b."""
    return 1.0 / (C * n)


def sklearn_C_from_torch_weight_decay(weight_decay: float, n: int) -> float:
    """Inverse of :func:`torch_weight_decay_from_sklearn_C`."""
    return 1.0 / (weight_decay * n)
