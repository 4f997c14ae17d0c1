"""A link of an optax chain (:mod:`xreg.optimizers.link`), and how the backend composes and masks links."""

from __future__ import annotations

import optax

from xreg.core.structure import Structure
from xreg.optimizers.link import Link, Shown, code_of, text_of  # noqa: F401 (re-exported for the backend)


def chain_text(links: list[Link]) -> str:
    if len(links) == 1:
        return links[0].text
    return "chain(" + ", ".join(link.text for link in links) + ")"


def chain_code(links: list[Link]) -> str:
    """One Python expression that evaluates to the chain's GradientTransformation."""
    return "optax.chain(" + ", ".join(link.code for link in links) + ")"


def to_optax(links: list[Link]) -> optax.GradientTransformation:
    return optax.chain(*(link.transform for link in links))


def mask_of(s: Structure, names: tuple[str, ...]) -> Shown | None:
    """None where every parameter is in ``names``; else the boolean tree and its text."""
    if set(names) == set(s.arch.names):
        return None
    return Shown({n: n in names for n in s.arch.names}, "[" + ", ".join(names) + "]")
