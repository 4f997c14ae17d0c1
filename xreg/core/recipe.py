"""The recipe: the ordered, named steps of one update, built once from a structure, framework-free.

Each convention says *where* its term enters (:mod:`xreg.semantics.conventions`); the recipe puts it
there between the fixed steps of an update::

    penalty(c)          the loss:               mean loss + c/2*||w||^2 (autodiff)         [l2-loss]
    decay(c)            the gradient:           g <- g + c*w, before clipping              [scratch, c = lam/m]
    clip                                        g <- g * min(1, M/(||g|| + 1e-6))          [--clip-norm]
    negate                                      g <- -g                                    [maximize=True]
    decay(c)            the clipped gradient:   g <- g + c*w                               [torch]
    direction                                   d <- the optimizer's rule on g (Adam, momentum, ...)
    decay(c)            the direction:          d <- d + c*w, then times lr_t              [decoupled]
    scale_by_lr                                 w <- w - lr_t*d

Every backend realizes these names (optax links, torch.optim arguments and param groups, NumPy
functions) and nothing else: coupled against decoupled is only *where* ``decay`` stands.

``negate`` is torch's ``maximize=True``: the optimizer's step negates the gradient it is handed before it
adds its own ``weight_decay``, so torch's decay still pulls w toward 0 while a penalty in the loss or a
decay added to the gradient by hand (l2-loss, scratch) is negated with it and pushes w away.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from xreg.core.structure import Structure
from xreg.semantics import conventions


@dataclass(frozen=True)
class Step:
    name: str  # 'penalty' | 'decay' | 'clip' | 'negate' | 'direction' | 'scale_by_lr'
    where: str = ""  # for penalty/decay: the conventions place
    coefficient: str = ""  # for penalty/decay: a conventions.COEFFICIENTS key

    @property
    def text(self) -> str:
        if self.name in ("penalty", "decay"):
            return f"{self.name}({self.coefficient}, {self.where})"
        return self.name


@functools.lru_cache(maxsize=256)
def build(s: Structure) -> tuple[Step, ...]:
    """The steps of one update of ``s`` (a pure function of the hashable structure: built once, reused
    by every step of every backend)."""
    conv = conventions.get(s.convention)
    form = conventions.coefficient_form(s.convention, s.decoupled_scale)
    term = {conventions.LOSS: Step("penalty", conv.enters, form)}.get(conv.enters, Step("decay", conv.enters, form))
    at = lambda place: [term] if conv.enters == place and s.groups else []  # noqa: E731
    return tuple(
        at(conventions.LOSS)
        + at(conventions.GRADIENT)
        + ([Step("clip")] if s.clip else [])
        + ([Step("negate")] if s.flag("maximize") else [])
        + at(conventions.CLIPPED)
        + [Step("direction")]
        + at(conventions.DIRECTION)
        + [Step("scale_by_lr")]
    )


def text(steps: tuple[Step, ...]) -> str:
    return " -> ".join(step.text for step in steps)
