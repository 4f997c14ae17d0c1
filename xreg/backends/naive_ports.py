"""The naive optax port of each torch optimizer: the obvious alias, with optax's own defaults.

This is what a user writes first when porting ``torch.optim.<Opt>(lr, weight_decay=lam, ...)``; the
comparator runs it beside the exact chain so the drift is measured, and :func:`cause` names why it
drifts (or returns None where the alias happens to be exact). Only :func:`naive_link` needs optax.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from xreg.checks import XregInputError
from xreg.spec import ExperimentSpec


def check_supported(spec: ExperimentSpec) -> None:
    """Naive ports translate torch's own ``weight_decay``: the coupled form, or the decoupled one."""
    decoupled_ok = spec.optimizer in ("adam", "adamw", "nadam", "radam")
    if spec.convention == "torch" or (spec.convention == "decoupled" and decoupled_ok):
        return
    allowed = "'torch' or 'decoupled'" if decoupled_ok else "'torch'"
    raise XregInputError(
        f"A naive port of '{spec.optimizer}' translates torch's weight_decay; use convention {allowed}. "
        f"Got {spec.convention!r} instead."
    )


class Link(NamedTuple):
    """One named piece of an optax chain: the text a reader sees and the transform it stands for."""

    text: str
    transform: Any  # optax.GradientTransformation


def naive_link(spec: ExperimentSpec, lr: Callable) -> Link:
    """The naive chain as one link."""
    import optax  # here, so that cause() and check_supported() work without JAX installed

    check_supported(spec)
    o, lam, name = spec.options, spec.lam, spec.optimizer
    mask = {"weight": True, "bias": spec.decay_bias}
    decay = optax.add_decayed_weights(lam, mask)
    dtext = f"add_decayed_weights({lam})"
    coupled = spec.convention == "torch"
    b1, b2 = o.get("betas", (None, None))
    eps = o.get("eps")
    if name == "sgd":
        mu = o["momentum"] or None
        return Link(f"chain({dtext}, sgd({spec.lr}, momentum={mu}, nesterov={o['nesterov']}))",
                    optax.chain(decay, optax.sgd(lr, mu, o["nesterov"])))
    if name in ("adam", "adamw"):
        if o["amsgrad"]:
            if coupled:
                return Link(f"chain({dtext}, amsgrad({spec.lr}, {b1}, {b2}, eps={eps}))",
                            optax.chain(decay, optax.amsgrad(lr, b1, b2, eps)))
            return Link(f"chain(scale_by_amsgrad({b1}, {b2}, eps={eps}), {dtext}, scale_by_learning_rate({spec.lr}))",
                        optax.chain(optax.scale_by_amsgrad(b1, b2, eps), decay, optax.scale_by_learning_rate(lr)))
        return Link(f"adamw({spec.lr}, {b1}, {b2}, eps={eps}, weight_decay={lam})",
                    optax.adamw(lr, b1, b2, eps, weight_decay=lam))
    if name == "rmsprop":
        mu = o["momentum"] or None
        return Link(f"chain({dtext}, rmsprop({spec.lr}, momentum={mu}, centered={o['centered']}))",
                    optax.chain(decay, optax.rmsprop(lr, momentum=mu, centered=o["centered"])))
    if name == "adagrad":
        return Link(f"chain({dtext}, adagrad({spec.lr}))", optax.chain(decay, optax.adagrad(lr)))
    if name == "adamax":
        return Link(f"chain({dtext}, adamax({spec.lr}, {b1}, {b2}, eps={eps}))",
                    optax.chain(decay, optax.adamax(lr, b1, b2, eps)))
    if name == "nadam":
        if coupled:
            return Link(f"chain({dtext}, nadam({spec.lr}, {b1}, {b2}, eps={eps}))",
                        optax.chain(decay, optax.nadam(lr, b1, b2, eps)))
        return Link(f"nadamw({spec.lr}, {b1}, {b2}, eps={eps}, weight_decay={lam})",
                    optax.nadamw(lr, b1, b2, eps, weight_decay=lam, mask=mask))
    if name == "radam":
        if coupled:
            return Link(f"chain({dtext}, radam({spec.lr}, {b1}, {b2}, eps={eps}))",
                        optax.chain(decay, optax.radam(lr, b1, b2, eps)))
        return Link(f"chain(scale_by_radam({b1}, {b2}, eps={eps}), {dtext}, scale_by_learning_rate({spec.lr}))",
                    optax.chain(optax.scale_by_radam(b1, b2, eps), decay, optax.scale_by_learning_rate(lr)))
    if name == "adadelta":
        return Link(f"adadelta(rho={o['rho']}, eps={o['eps']}, weight_decay={lam})  [learning_rate left at None]",
                    optax.adadelta(rho=o["rho"], eps=o["eps"], weight_decay=lam, weight_decay_mask=mask))
    if name == "asgd":
        return Link(f"chain({dtext}, sgd({spec.lr}))", optax.chain(decay, optax.sgd(lr)))
    raise AssertionError(name)


def cause(spec: ExperimentSpec) -> str | None:
    """Why the naive port drifts from torch for this spec, or None where it is exact."""
    o, name = spec.options, spec.optimizer
    if name == "sgd":
        return "optax.sgd has no dampening: its buffer is mu*b + g, torch's mu*b + (1-tau)*g" if o["dampening"] else None
    if name in ("adam", "adamw"):
        if o["amsgrad"]:
            return ("optax AMSGrad takes the max of the bias-corrected v_hat; torch takes the max of the raw v "
                    "and then divides by sqrt(1-b2^t)")
        if spec.convention == "torch":
            return "optax.adamw decays decoupled (w <- w - lr*lam*w); torch Adam(weight_decay) adds lam*w to the gradient"
        return None if spec.decay_bias else "optax.adamw without a mask decays the bias too (torch: bias in a wd=0 group)"
    if name == "rmsprop":
        return (f"optax.rmsprop defaults decay=0.9 (torch alpha={o['alpha']}) and eps_in_sqrt=True: "
                "1/sqrt(v+eps) instead of torch's 1/(sqrt(v)+eps)")
    if name == "adagrad":
        return (f"optax.adagrad starts the accumulator at 0.1 (torch {o['initial_accumulator_value']}) and uses "
                f"eps=1e-7 inside the root (torch eps={o['eps']} outside)"
                + ("; it has no lr_decay" if o["lr_decay"] else ""))
    if name == "adamax":
        return None
    if name == "nadam":
        return ("optax NAdam is Dozat's form with momentum b1 at every step; torch's momentum schedule "
                f"mu_t = b1*(1-0.5*0.96^(t*{o['momentum_decay']})) starts near b1/2")
    if name == "radam":
        return "optax RAdam puts eps on sqrt(v_hat) and switches at rho_t >= 5; torch puts eps on raw sqrt(v), rho_t > 5"
    if name == "adadelta":
        return "optax.adadelta's learning_rate defaults to None: no sign flip, so it climbs the loss (torch lr=1.0)"
    if name == "asgd":
        return "optax has no ASGD: the lambd decay w*(1-lambd*eta_t) and the eta_t step-size schedule are dropped"
    raise AssertionError(name)
