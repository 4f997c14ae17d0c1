"""The optimizers xreg reproduces, one module each (``sgd.py``, ``adam.py``, ...): everything xreg knows
about one torch optimizer lives in its module (torch's facts and equations, the NumPy reference, the optax
direction or twin, the naive alias and what it gets wrong, the forms fixes and translations print).

The registry below finds the modules itself: adding an optimizer is adding its module (it states
``OPTIMIZERS``, a tuple of :class:`xreg.optimizers.base.Optimizer`, with their places in the table).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping

from xreg.core.checks import XregInputError, check_choice
from xreg.optimizers.base import COMMON, IMPLEMENTATION, REFUSED, Optimizer  # noqa: F401 (the schema, re-exported)


def _discover() -> dict[str, Optimizer]:
    found: list[Optimizer] = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_") and info.name not in ("base", "link"):
            found += importlib.import_module(f"{__name__}.{info.name}").OPTIMIZERS
    return {o.name: o for o in sorted(found, key=lambda o: (o.order, o.name))}


OPTIMIZERS: dict[str, Optimizer] = _discover()
TORCH: dict[str, Optimizer] = {n: o for n, o in OPTIMIZERS.items() if o.framework == "torch"}  # torch.optim's rules
KERAS: dict[str, Optimizer] = {n: o for n, o in OPTIMIZERS.items() if o.framework == "keras"}  # keras.optimizers' rules
DEFAULT = next(iter(OPTIMIZERS))  # the table's first row: plain SGD


def shown(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without the common ones left at torch's defaults (maximize=False, foreach/fused=None)."""
    return {k: v for k, v in options.items() if not (k in COMMON and v == COMMON[k])}


def get(name: str) -> Optimizer:
    return OPTIMIZERS[check_choice("optimizer", name, OPTIMIZERS)]


def by_name(name: str) -> str | None:
    """The table's key for ``name``: an xreg name or a torch class name, any case (``AdamW``, ``adamw``); None if unknown."""
    low = name.lower()
    return low if low in OPTIMIZERS else next((o.name for o in OPTIMIZERS.values() if o.torch_class.lower() == low), None)


def naive_cause(name: str, options: Mapping[str, Any], convention: str, all_decayed: bool) -> str | None:
    """Why the naive optax port of ``name`` drifts from torch, or None where the alias is exact."""
    return get(name).naive_cause(options, convention, all_decayed)


def naive_convention(name: str, convention: str) -> str:
    """The convention a naive port of ``name`` is shown for: ``convention`` where the port translates it,
    else the first one it does (Rprop's port: L2 in the loss)."""
    allowed = get(name).naive_conventions
    return convention if convention in allowed else allowed[0]


def check_naive(name: str, convention: str) -> None:
    """A naive port translates torch's own ``weight_decay``: the coupled form, or the decoupled one."""
    opt = get(name)
    if convention not in opt.naive_conventions:
        said = " or ".join(repr(c) for c in opt.naive_conventions)
        what = "torch's weight_decay" if opt.takes_weight_decay else f"torch.optim.{opt.torch_class}, which has no weight_decay, with L2 in the loss"
        raise XregInputError(f"A naive port of '{name}' translates {what}; use convention {said}. Got {convention!r} instead.")


def twins() -> dict[str, Any]:
    """Every optimizer's optax twins by name (``xreg.twins`` re-exports them)."""
    return {fn.__name__: fn for o in OPTIMIZERS.values() for fn in o.twins}
