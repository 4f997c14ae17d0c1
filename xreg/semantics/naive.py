"""One difference a naive port can make in the training step (a clipping, loss, accumulation or resume form),
named by a stable code: the shape every table of naive forms shares (:mod:`xreg.semantics.clipping`,
:mod:`~xreg.semantics.losses`, :mod:`~xreg.semantics.accumulation`, :mod:`~xreg.semantics.resume`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    code: str
    why: str  # the difference, as the comparison names it
    optax: str = ""  # what the porter writes, where it is one call


def table(*differences: Difference) -> dict[str, Difference]:
    return {d.code: d for d in differences}
