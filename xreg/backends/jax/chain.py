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

import dataclasses

from typing import Any, Callable, Mapping

import optax

from xreg.backends.jax import naive, twins
from xreg.backends.jax.link import Link, Shown, _text, chain_code, chain_text, mask_of, to_optax  # noqa: F401 (chain_code, chain_text, to_optax: used as chain.*)
from xreg.core import recipe
from xreg.core.structure import Structure, group_strengths
from xreg.semantics import conventions, optimizers


def _num(v: Any, text: str | None = None) -> Any:
    return Shown(v, text) if text is not None else v


class _Options(dict):
    """The optimizer's options in the run's dtype (for stock optax links); ``.wide`` holds them in float64
    for the twins, which compute torch's scalar coefficients in Python-float precision. When printing
    (Python floats), both are the same values."""

    def __init__(self, hp: Mapping[str, Any]):
        super().__init__(hp["options"])
        self.wide = hp.get("wide_options", hp["options"])


# ---- each optimizer's own rule, as links returning the direction d (torch: w <- w - lr*d) -----------
def _sgd(s, o, lr):
    if not s.flag("momentum>0"):
        return []
    if not s.flag("dampening>0"):
        return [Link("trace", optax.trace, kwargs={"decay": o["momentum"], "nesterov": s.flag("nesterov")})]
    return [Link("twins.scale_by_torch_sgd_momentum", twins.scale_by_torch_sgd_momentum, (o["momentum"],),
                 {"dampening": o["dampening"], "nesterov": s.flag("nesterov")})]  # fmt: skip


def _adam(s, o, lr):
    (b1, b2), eps = o["betas"], o["eps"]
    if s.flag("amsgrad"):
        return [Link("twins.scale_by_torch_amsgrad", twins.scale_by_torch_amsgrad, tuple(o.wide["betas"]), {"eps": o.wide["eps"]})]
    return [Link("scale_by_adam", optax.scale_by_adam, kwargs={"b1": b1, "b2": b2, "eps": eps})]


def _rmsprop(s, o, lr):
    kw = {"decay": o["alpha"], "eps": o["eps"], "eps_in_sqrt": False}
    links = [Link("scale_by_stddev", optax.scale_by_stddev, kwargs=kw) if s.flag("centered")
             else Link("scale_by_rms", optax.scale_by_rms, kwargs=kw)]  # fmt: skip
    if s.flag("momentum>0"):  # torch's buffer holds g/avg without lr: trace before the lr, not after
        links.append(Link("trace", optax.trace, kwargs={"decay": o["momentum"]}))
    return links


def _adagrad(s, o, lr):
    S0, eps, decay = o["initial_accumulator_value"], o["eps"], o["lr_decay"]
    links = [Link("twins.scale_by_torch_adagrad", twins.scale_by_torch_adagrad, kwargs={"initial_accumulator_value": S0, "eps": eps})]
    if s.flag("lr_decay>0"):
        links.append(Link("scale_by_schedule", optax.scale_by_schedule,
                          (Shown(lambda c: 1 / (1 + c * decay), f"1/(1 + count*{_text(decay)})",
                                 f"lambda count: 1 / (1 + count * {decay!r})" if isinstance(decay, float) else None),)))  # fmt: skip
    return links


def _adamax(s, o, lr):
    (b1, b2), eps = o["betas"], o["eps"]
    return [Link("scale_by_adamax", optax.scale_by_adamax, kwargs={"b1": b1, "b2": b2, "eps": eps})]


def _nadam(s, o, lr):
    w = o.wide
    return [Link("twins.scale_by_torch_nadam", twins.scale_by_torch_nadam, tuple(w["betas"]),
                 {"eps": w["eps"], "momentum_decay": w["momentum_decay"]})]  # fmt: skip


def _radam(s, o, lr):
    return [Link("twins.scale_by_torch_radam", twins.scale_by_torch_radam, tuple(o.wide["betas"]), {"eps": o.wide["eps"]})]


def _adadelta(s, o, lr):
    return [Link("scale_by_adadelta", optax.scale_by_adadelta, kwargs={"rho": o["rho"], "eps": o["eps"]})]


def _asgd(s, o, lr, decoupled=None):  # w <- w - eta_t*(g + lambd*w): lambd decays every parameter, eta replaces lr
    extra = {"decoupled": decoupled} if decoupled is not None else {}
    return [
        Link("add_decayed_weights", optax.add_decayed_weights, (o["lambd"],)),
        Link("twins.scale_by_torch_asgd_eta", twins.scale_by_torch_asgd_eta, (o.wide["lambd"], o.wide["alpha"], lr), extra),
    ]


def _adafactor(s, o, lr, decoupled=None):  # its direction holds the step size (own_step_size), and torch's decay
    w = o.wide
    extra = {"decoupled": decoupled} if decoupled is not None else {}
    return [Link("twins.scale_by_torch_adafactor", twins.scale_by_torch_adafactor, (lr,),
                 {"beta2_decay": w["beta2_decay"], "eps": tuple(w["eps"]), "d": w["d"], **extra})]  # fmt: skip


def _muon(s, o, lr):
    """torch's Muon on the 2-D leaves, the paired class's direction on the rest (optax.partition)."""
    w = o.wide
    muon = Link("twins.scale_by_torch_muon", twins.scale_by_torch_muon, (w["momentum"], tuple(w["ns_coefficients"]), w["eps"]),
                {"nesterov": s.flag("nesterov"), "ns_steps": s.flag("ns_steps"), "adjust_lr_fn": s.flag("adjust_lr_fn")})  # fmt: skip
    other = s.flag("others")
    paired = dataclasses.replace(s, optimizer=other, flags=optimizers.get(s.optimizer).paired_flags(s.flags))
    rest = DIRECTIONS[other](paired, _Options({"options": o["paired"], "wide_options": o.wide["paired"]}), lr)
    if len(rest) == 1:
        rest_text, rest_code, rest_tx = rest[0].text, _code_or_none(rest[0]), lambda: rest[0].transform
    else:
        rest_text = "chain(" + ", ".join(x.text for x in rest) + ")"
        codes = [_code_or_none(x) for x in rest]
        rest_code = None if None in codes else "optax.chain(" + ", ".join(codes) + ")"
        rest_tx = lambda: optax.chain(*(x.transform for x in rest))  # noqa: E731
    muon_code = _code_or_none(muon)
    code = None if None in (muon_code, rest_code) else f"{{'muon': {muon_code}, 'others': {rest_code}}}"
    transforms = Shown(lambda: {"muon": muon.transform, "others": rest_tx()}, f"{{'muon': {muon.text}, 'others': {rest_text}}}", code)
    labels = Shown(twins.matrix_labels, "matrix_labels", "xreg.twins.matrix_labels")
    return [Link("partition", lambda t, lab: optax.partition(t(), lab), (transforms, labels))]


def _code_or_none(link: Link) -> str | None:
    try:
        return link.code
    except ValueError:
        return None


DIRECTIONS: dict[str, Callable[[Structure, Mapping[str, Any], Any], list[Link]]] = {
    "sgd": _sgd, "adam": _adam, "adamw": _adam, "rmsprop": _rmsprop, "adagrad": _adagrad, "adamax": _adamax,
    "nadam": _nadam, "radam": _radam, "adadelta": _adadelta, "asgd": _asgd, "adafactor": _adafactor, "muon": _muon,
}  # fmt: skip


def _lr_shown(s: Structure, hp: Mapping[str, Any], lr_t: Any) -> Any:
    if not isinstance(hp["lr"], (int, float)):
        return lr_t
    sched = "" if s.schedule == "constant" else f" * {s.schedule} schedule"
    return Shown(lr_t, f"{hp['lr']}{sched}", repr(hp["lr"]) if s.schedule == "constant" else None)


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
                    shown = {"lam": f"{lam}", "lam/m": f"{lam}/{m_text}", "lam/lr": f"{c:.6g}"}[step.coefficient]
                    if isinstance(m, (int, float)) or step.coefficient != "lam/m":
                        c = Shown(c, shown, repr(c))
                        shown = None
                mask = mask_of(s, names)
                out.append(Link("add_decayed_weights", optax.add_decayed_weights, (_num(c, shown),),
                                {"mask": mask} if mask else {}))  # fmt: skip
        elif step.name == "clip":
            out.append(Link("twins.torch_clip_grad_norm", twins.torch_clip_grad_norm, (hp["clip_norm"],)))
        elif step.name == "negate":  # maximize=True: the gradient the optimizer is handed, negated
            out.append(Link("scale", optax.scale, (-1.0,)))
        elif step.name == "direction" and own:
            out += DIRECTIONS[s.optimizer](s, _Options(hp), lr_t, _folded_decay(s, hp, steps, lr_t))
        elif step.name == "direction":
            out += DIRECTIONS[s.optimizer](s, _Options(hp), lr_t)
        elif step.name == "scale_by_lr" and optimizers.get(s.optimizer).own_step_size:
            out.append(Link("scale", optax.scale, (-1.0,)))  # the direction holds the step already
        elif step.name == "scale_by_lr":
            out.append(Link("scale_by_learning_rate", optax.scale_by_learning_rate, (_lr_shown(s, hp, lr_t),)))
    return out


def links(s: Structure, hp: Mapping[str, Any], lr_t: Any, m: Any, m_text: str = "m_t") -> list[Link]:
    """The chain for ``s.port``: 'exact' (reproduces torch) or 'naive' (the obvious alias)."""
    if s.port == "naive":
        return [naive.naive_link(s, hp, _lr_shown(s, hp, lr_t))]
    return exact_links(s, hp, lr_t, m, m_text)
