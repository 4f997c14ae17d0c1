"""xreg's optax transforms for the torch.optim rules stock optax cannot express, importable for your own
chains (``import optax, xreg.twins``): every ``optax_code`` that ``xreg translate`` prints evaluates
over the names ``optax`` and ``xreg``. Each twin lives in its optimizer's module (:mod:`xreg.optimizers`),
which says why stock optax is not enough.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from xreg import optimizers
from xreg.backends.jax.twins import torch_clip_grad_norm  # noqa: F401 (re-exported)
from xreg.core.structure import matches


def path_name(path: Sequence[Any]) -> str:
    """A pytree path as xreg names it: keys and positions joined with '.' (``dense.kernel``, ``layers.0.w``)."""
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return ".".join(parts)


def decay_mask(exclude: Sequence[str]) -> Callable[[Any], Any]:
    """An ``add_decayed_weights`` mask: True for every leaf whose path matches none of ``exclude``
    (xreg's ``--no-decay`` rule: fnmatch on the dotted path, and a pattern without a dot also matches
    the last part, so ``"bias"`` matches ``dense.bias``)."""
    import jax

    patterns = tuple(exclude)

    def mask(params: Any) -> Any:
        return jax.tree_util.tree_map_with_path(lambda path, _: not any(matches(path_name(path), p) for p in patterns), params)

    return mask


def decay_rates(rate: float, exclude: Sequence[str] = ()) -> Callable[[Any], Any]:
    """The ``decoupled`` tree of a twin that holds torch's own decay (Adafactor): ``rate`` (torch's
    ``lr*weight_decay``) on every leaf whose path matches none of ``exclude``, 0 on the others."""
    import jax

    patterns = tuple(exclude)

    def rates(params: Any) -> Any:
        return jax.tree_util.tree_map_with_path(lambda path, _: 0.0 if any(matches(path_name(path), p) for p in patterns) else rate, params)

    return rates


globals().update(optimizers.twins())  # scale_by_torch_nadam, ...: every optimizer module's twins by name
