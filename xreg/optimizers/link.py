"""A link of an optax chain as xreg prints and runs it: a named call that builds its transform only when
asked (``Link.transform``), so the optimizer modules can state their optax directions without importing
optax at import time. The backend (:mod:`xreg.backends.jax.chain`) composes the links.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class Shown:
    """An argument with its own text (a traced value, a mask, a per-step coefficient)."""

    value: Any
    text: str
    code: str | None = None  # Python source that evaluates to ``value`` (names: optax, xreg), where there is one


def code_of(v: Any) -> str:
    """Python source for an argument; ValueError where there is none (a traced value)."""
    if isinstance(v, Shown):
        if v.code is None:
            raise ValueError(f"no source for {v.text!r}")
        return v.code
    if isinstance(v, (bool, int, float, str, tuple)) or v is None:
        return repr(v)
    raise ValueError(f"no source for {type(v).__name__}")


def text_of(v: Any) -> str:
    if isinstance(v, Shown):
        return v.text
    if isinstance(v, (int, float, bool, str)) or v is None:
        return str(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(text_of(x) for x in v) + ")"
    return "<traced>"


@dataclass(frozen=True)
class Link:
    """One named piece of an optax chain: ``fn(*args, **kwargs)``, printed as ``name(args, k=v)``.
    A name starting with ``twins.`` is one of xreg's twins (importable as ``xreg.twins.<name>``)."""

    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        parts = [text_of(a) for a in self.args] + [f"{k}={text_of(v)}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(parts)})"

    @property
    def code(self) -> str:
        """The link as Python source over the names ``optax`` and ``xreg``."""
        qual = f"xreg.{self.name}" if self.name.startswith("twins.") else f"optax.{self.name}"
        parts = [code_of(a) for a in self.args] + [f"{k}={code_of(v)}" for k, v in self.kwargs.items()]
        return f"{qual}({', '.join(parts)})"

    @property
    def transform(self) -> Any:
        raw = lambda v: v.value if isinstance(v, Shown) else v  # noqa: E731
        return self.fn(*(raw(a) for a in self.args), **{k: raw(v) for k, v in self.kwargs.items()})


def code_or_none(link: Link) -> str | None:
    try:
        return link.code
    except ValueError:
        return None


def chained(*parts: Link) -> Link:
    """Several links as one ``chain(...)`` link (its text names each part)."""

    def build(*links: Link) -> Any:
        import optax

        return optax.chain(*(link.transform for link in links))

    return Link("chain", build, tuple(Shown(p, p.text) for p in parts))
