"""A diagnosed rule as code a user pastes: the torch optimizer or the optax transformation that runs it.

``diagnose`` names, for each side, the rule the *other* run follows; this module writes that rule in the
side's own framework, from the optimizer modules (:mod:`xreg.optimizers`) and the chains xreg
itself runs (:func:`xreg.analysis.translate.optax_chain_code`), so a printed fix is code that runs:

* torch: ``lambda model: torch.optim.X([{"params": [model.get_parameter(name), ...], "weight_decay": c}, ...], lr=..., ...)``
  (AdamW, or ``decoupled_weight_decay=True``, for a decoupled decay where torch has one);
* optax: an expression over ``optax`` and ``xreg`` (``import optax, xreg.twins``), the parameters the
  decay leaves out masked by their names in the optax tree (``xreg.twins.decay_mask``).

None where the rule has no single expression in that framework (a schedule, a decoupled decay torch's
class cannot state, a form only optax has): the prose fix then stands alone.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from xreg import optimizers


def _settings(rule) -> tuple[float, str, float, dict[str, float]] | None:
    """(lr, 'coupled'|'decoupled'|'none', coefficient, per-name coefficient) of a rule one setting states."""
    if rule.lr is None or rule.lr.size == 0 or not np.all(rule.lr == rule.lr[0]):
        return None  # a schedule: no single lr
    coupled, decoupled = any(rule.coupled.values()), any(rule.decoupled.values())
    if coupled and decoupled or (decoupled and not rule.by_lr):
        return None
    kind = "decoupled" if decoupled else "coupled" if coupled else "none"
    per = dict(rule.decoupled if decoupled else rule.coupled)
    values = {v for v in per.values() if v}
    if len(values) > 1:
        return None  # one strength and a mask: xreg's settings (several strengths need param groups in torch only)
    return float(rule.lr[0]), kind, (values.pop() if values else 0.0), per


def _torch_options(rule, opt: optimizers.Optimizer) -> dict[str, Any] | None:
    extra = {k for k, v in rule.options.items() if k not in opt.defaults and v not in (False, None) and k not in opt.roundings}
    if extra:
        return None  # a form torch's class has not (eps inside the root, ...)
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in rule.options.items()  # torch's defaults go unsaid
            if k in opt.defaults and k not in optimizers.IMPLEMENTATION and k not in opt.xreg_only
            and (tuple(v) if isinstance(v, list) else v) != opt.defaults[k]}  # fmt: skip


def _stated(rule):
    """(the optimizer's row, its settings, its torch options) where one setting states the rule, else None
    (Muon pairs two classes: no single expression)."""
    settings, opt = _settings(rule), optimizers.get(rule.optimizer)
    if settings is None or opt.two_d_only:
        return None
    options = _torch_options(rule, opt)
    return None if options is None else (opt, settings, options)


def torch_code(rule, names: Mapping[str, str]) -> str | None:
    """``rule`` as ``lambda model: torch.optim...``; ``names`` maps the rule's parameter names to the torch
    model's."""
    stated = _stated(rule)
    if stated is None:
        return None
    opt, (lr, kind, _, per), options = stated
    form = (opt.torch_class, ()) if kind == "none" else opt.torch_form(kind)
    if form is None:
        return None  # torch's class has no weight_decay of that kind: the decay is a line of the loop
    cls, flags = form
    groups: dict[float, list[str]] = {}
    for n, c in per.items():
        groups.setdefault(c, []).append(names[n])
    wd = (lambda c: f', "weight_decay": {c!r}') if opt.takes_weight_decay else (lambda c: "")  # noqa: E731
    parts = [f'{{"params": [{", ".join(f"model.get_parameter({m!r})" for m in ms)}]{wd(c)}}}' for c, ms in groups.items()]
    kw = [f"lr={lr!r}"] + [f"{k}={v!r}" for k, v in options.items()] + list(flags)
    return f"lambda model: torch.optim.{cls}([{', '.join(parts)}], {', '.join(kw)})"


def optax_code(rule, names: Mapping[str, str]) -> str | None:
    """``rule`` as an optax transformation (over ``optax`` and ``xreg``); ``names`` maps the rule's parameter
    names to the optax tree's dotted paths."""
    from xreg.core.checks import XregInputError
    from xreg.core.spec import ExperimentSpec
    from xreg.analysis.translate import optax_chain_code

    stated = _stated(rule)
    if stated is None:
        return None
    opt, (lr, kind, lam, per), options = stated
    name = opt.name
    if kind == "coupled" and opt.coupled_form:
        name = opt.coupled_form  # the coupled rule's own class (AdamW coupled is Adam)
    convention = "decoupled" if kind == "decoupled" or (kind == "none" and opt.native_convention == "decoupled") else "coupled"
    left_out = tuple(names[n] for n, c in per.items() if not c) if lam else ()
    try:
        spec = ExperimentSpec(optimizer=name, lr=lr, lam=lam, convention=convention,
                              options={k: v for k, v in options.items() if k in optimizers.get(name).defaults})  # fmt: skip
        return optax_chain_code(spec, left_out)
    except XregInputError:
        return None


def code_for(rule, framework: str, names: Mapping[str, str]) -> str | None:
    """The rule in the run's framework ('torch' or 'optax'/'jax'/'flax'), or None."""
    if framework == "torch":
        return torch_code(rule, names)
    if framework in ("optax", "jax", "flax"):
        return optax_code(rule, names)
    return None
