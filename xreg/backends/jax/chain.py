"""The recipe as an optax chain: every link is a named object that both builds its transform and
prints its text, so the chain a reader sees is the chain that runs.

For the exact port of ``torch.optim.<Opt>(weight_decay=lam)``::

    chain(
        [add_decayed_weights(lam/m_t, mask)]   # scratch: (sum_i grad_i + lam*w)/m, part of the gradient
        [torch_clip_grad_norm(M)]              # clip_grad_norm_ runs before torch adds weight decay
        [add_decayed_weights(lam, mask)]       # torch: coupled decay, g + lam*w, before any scaling
        <direction of the optimizer>           # e.g. trace(momentum), scale_by_adam(...)
        [add_decayed_weights(s, mask)]         # decoupled: -lr_t*(d + s*w), as optax.adamw
        scale_by_learning_rate(lr_t),          # lr_t from the shared per-epoch schedule
    )

One ``add_decayed_weights`` per decay group (its strength, its mask). ``l2-loss`` puts the penalty in
the loss instead. Values may be Python floats (for the printed text) or traced scalars (in a run).
"""

from __future__ import annotations


from typing import Any, Mapping

import optax

from xreg import optimizers
from xreg.backends.jax import naive, twins
from xreg.backends.jax.link import Link, Shown, chain_code, chain_text, mask_of, to_optax  # noqa: F401 (chain_code, chain_text, to_optax: used as chain.*)
from xreg.core import recipe
from xreg.core.structure import Structure, group_strengths
from xreg.optimizers.base import Options
from xreg.semantics import clipping, conventions


def _num(v: Any, text: str | None = None) -> Any:
    return Shown(v, text) if text is not None else v


def _options(hp: Mapping[str, Any]) -> Options:
    """The options in the run's dtype, and in float64 (``.wide``) for the twins."""
    return Options(hp["options"], hp.get("wide_options", hp["options"]))


def _lr_shown(s: Structure, hp: Mapping[str, Any], lr_t: Any) -> Any:
    if not isinstance(hp["lr"], (int, float)):
        return lr_t
    if s.schedule == "constant":
        return Shown(lr_t, f"{hp['lr']}", repr(hp["lr"]))
    every = "step" if s.schedule_every == "step" else "epoch"
    return Shown(lr_t, f"lr_t (lr {hp['lr']}, {s.schedule} per {every}{', naive' if s.naive_schedule else ''})")


def _folded_decay(s: Structure, hp: Mapping[str, Any], steps, lr_t: Any) -> Shown | None:
    """Per parameter ``k = lr_t*c`` of a decoupled decay that runs before the optimizer's own step."""
    decay = next((st for st in steps if st.name == "decay" and st.where == conventions.DIRECTION), None)
    if decay is None:
        return None
    k = {n: 0.0 * lr_t for n in s.arch.names}
    for names, lam in group_strengths(s, hp):
        c = conventions.coefficient(decay.coefficient, lam, 1, hp["lr"])
        for n in names:
            k[n] = lr_t * (c.astype(lr_t.dtype) if hasattr(c, "astype") and hasattr(lr_t, "dtype") else c)
    return Shown(k, f"lr_t*{decay.coefficient}")


def clip_link(s: Structure, hp: Mapping[str, Any], naive: bool = False) -> Link:
    """The run's clipping as optax: ``optax.clip`` (clip_grad_value_), torch's clip_grad_norm_ twin, or, under the
    naive ``clip-eps``, ``optax.clip_by_global_norm`` (no 1e-6)."""
    if s.clip == clipping.VALUE:
        return Link("clip", optax.clip, (hp["clip_norm"],))
    if naive and "clip-eps" in s.naive_clip:
        return Link("clip_by_global_norm", optax.clip_by_global_norm, (hp["clip_norm"],))
    kw = {**({"norm_type": s.clip_norm_type} if s.clip_norm_type != 2.0 else {}), **({"per_parameter": True} if s.clip_per_parameter else {}),
          **({"error_if_nonfinite": True} if s.clip_error else {})}  # fmt: skip
    return Link("twins.torch_clip_grad_norm", twins.torch_clip_grad_norm, (hp["clip_norm"],), kw)


def exact_links(s: Structure, hp: Mapping[str, Any], lr_t: Any, m: Any, m_text: str = "m_t") -> list[Link]:
    """The exact chain: the recipe's steps, each realized by stock optax or a torch twin. Traced
    coefficients are cast to the run's dtype (the dtype of ``lr_t``), as torch applies a Python float."""
    out: list[Link] = []
    own = optimizers.get(s.optimizer).own_step_size
    steps = recipe.build(s)
    for step in steps:
        if step.name == "decay" and own and step.where == conventions.DIRECTION:
            continue  # an optimizer with its own step size takes decoupled decay into its direction (below)
        if step.name == "decay":
            for names, lam in group_strengths(s, hp):
                c = conventions.coefficient(step.coefficient, lam, m, hp["lr"])
                shown = None
                if hasattr(c, "astype") and hasattr(lr_t, "dtype"):
                    c = c.astype(lr_t.dtype)
                if isinstance(lam, (int, float)):
                    shown = {"lam": f"{lam}", "lam/m": f"{lam}/{m_text}", "lam/lr": f"{c:.6g}", "2lam": f"2*{lam}"}[step.coefficient]
                    if isinstance(m, (int, float)) or step.coefficient != "lam/m":
                        c = Shown(c, shown, repr(c))
                        shown = None
                mask = mask_of(s, names)
                out.append(Link("add_decayed_weights", optax.add_decayed_weights, (_num(c, shown),),
                                {"mask": mask} if mask else {}))  # fmt: skip
        elif step.name == "clip":
            out.append(clip_link(s, hp))
        elif step.name == "negate":  # maximize=True: the gradient the optimizer is handed, negated
            out.append(Link("scale", optax.scale, (-1.0,)))
        elif step.name == "direction":
            decoupled = _folded_decay(s, hp, steps, lr_t) if own else None
            out += optimizers.get(s.optimizer).direction(dict(s.flags), _options(hp), lr_t, decoupled)
        elif step.name == "scale_by_lr" and own:
            out.append(Link("scale", optax.scale, (-1.0,)))  # the direction holds the step already
        elif step.name == "scale_by_lr":
            out.append(Link("scale_by_learning_rate", optax.scale_by_learning_rate, (_lr_shown(s, hp, lr_t),)))
    return out


def links(s: Structure, hp: Mapping[str, Any], lr_t: Any, m: Any, m_text: str = "m_t") -> list[Link]:
    """The chain for ``s.port``: 'exact' (reproduces torch) or 'naive' (the obvious alias)."""
    if s.port == "naive":
        return [naive.naive_link(s, hp, _lr_shown(s, hp, lr_t))]
    return exact_links(s, hp, lr_t, m, m_text)
