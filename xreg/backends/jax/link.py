"""A link of an optax chain: a named object that both builds its transform and prints its text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import optax

from xreg.core.structure import Structure


@dataclass(frozen=True)
class Shown:
    """An argument with its own text (a traced value, a mask, a per-step coefficient)."""

    value: Any
    text: str
    code: str | None = None  # Python source that evaluates to ``value`` (names: optax, xreg), where there is one


def _code(v: Any) -> str:
    """Python source for an argument; ValueError where there is none (a traced value)."""
    if isinstance(v, Shown):
        if v.code is None:
            raise ValueError(f"no source for {v.text!r}")
        return v.code
    if isinstance(v, (bool, int, float, str, tuple)) or v is None:
        return repr(v)
    raise ValueError(f"no source for {type(v).__name__}")


def _text(v: Any) -> str:
    if isinstance(v, Shown):
        return v.text
    if isinstance(v, (int, float, bool, str)) or v is None:
        return str(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(_text(x) for x in v) + ")"
    return "<traced>"


@dataclass(frozen=True)
class Link:
    """One named piece of an optax chain: ``fn(*args, **kwargs)``, printed as ``name(args, k=v)``."""

    name: str
    fn: Callable[..., optax.GradientTransformation]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        parts = [_text(a) for a in self.args] + [f"{k}={_text(v)}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    @property
    def code(self) -> str:
        """The link as Python source over the names ``optax`` and ``xreg`` (twins live in ``xreg.twins``)."""
        qual = f"xreg.{self.name}" if self.name.startswith("twins.") else f"optax.{self.name}"
        parts = [_code(a) for a in self.args] + [f"{k}={_code(v)}" for k, v in self.kwargs.items()]
        return f"{qual}({', '.join(parts)})"

    @property
    def transform(self) -> optax.GradientTransformation:
        raw = lambda v: v.value if isinstance(v, Shown) else v  # noqa: E731
        return self.fn(*(raw(a) for a in self.args), **{k: raw(v) for k, v in self.kwargs.items()})


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
