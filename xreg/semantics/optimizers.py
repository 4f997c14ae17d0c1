"""The optimizers xreg reproduces, in ONE table: torch's names, defaults, validation, update equations,
which options change the shape of the computation (structure) and which are numbers (hyperparameters),
how torch applies ``weight_decay`` on each class, and the naive optax alias with what it gets wrong.

One hyperparameter, one name: every option keeps its ``torch.optim`` name (``momentum``, ``betas``,
``alpha``...). Backends translate to framework names inside themselves. Learning rate and weight decay
are not options: they are ``ExperimentSpec.lr`` and ``ExperimentSpec.lam``.

Notation in the formulas: ``g`` is the gradient after the regularization convention has been applied
(see :mod:`xreg.conventions`), ``lr`` the current (scheduled) learning rate, ``t`` the 1-based step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from xreg.checks import XregInputError, check_bool, check_choice, check_float, check_int


def _unit(name: str, v: Any) -> float:  # [0, 1)
    return check_float(name, v, 0.0, 1.0, closed="left")


def _closed_unit(name: str, v: Any) -> float:  # [0, 1]
    return check_float(name, v, 0.0, 1.0)


def _nonneg(name: str, v: Any) -> float:  # [0, inf)
    return check_float(name, v, 0.0)


def _betas(name: str, v: Any) -> tuple[float, float]:
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise XregInputError(
            f"The '{name}' parameter must be a pair of floats in the range [0, 1). Got {v!r} instead."
        )
    return (_unit(f"{name}[0]", v[0]), _unit(f"{name}[1]", v[1]))


@dataclass(frozen=True)
class Optimizer:
    """One torch optimizer: its defaults (torch's), per-option checks and update equations."""

    name: str
    torch_class: str
    default_lr: float
    defaults: Mapping[str, Any]
    checks: Mapping[str, Callable[[str, Any], Any]]
    formula: str
    # The convention torch applies for `weight_decay=lam` on this class: 'torch' (coupled L2 in the
    # gradient) for all but AdamW, which decays decoupled.
    native_convention: str = "torch"
    cross_checks: tuple[Callable[[Mapping[str, Any]], None], ...] = field(default=())
    # The class takes `decoupled_weight_decay=True` (torch 2.13: Adam, NAdam, RAdam).
    decoupled_flag: bool = False
    # Options that change the computation's shape, as booleans of the resolved options: they belong to
    # the (hashable, compiled-once) structure; every other option is a number and a traced hyperparameter.
    flags: Callable[[Mapping[str, Any]], dict[str, bool]] = lambda o: {}
    # No momentum buffer: a coupled decay is then exactly 1 - lr*c per step (SGD without momentum, ASGD).
    momentum_free: Callable[[Mapping[str, Any]], bool] = lambda o: False
    # The naive optax alias a user writes first, the conventions it can translate, and why it drifts
    # from torch (None where it is exact). `naive_cause(options, convention, decays_everything)`.
    naive_alias: str = ""
    naive_conventions: tuple[str, ...] = ("torch",)
    naive_cause: Callable[[Mapping[str, Any], str, bool], str | None] = lambda o, c, all_decayed: None
    # The class steps by a size of its own that replaces the lr (ASGD's eta): its direction already
    # holds the step, so the chain ends in a sign flip rather than a multiplication by lr_t.
    own_step_size: bool = False
    # torch applies its decoupled decay inside the step, which reads w before it (Adafactor's rms(w))
    decays_inside: bool = False
    # The stock optax alias's defaults where they differ from torch's, in torch's option names: each a
    # (what differs, overrides) a diagnosis re-simulates. Beyond torch's options: ``eps_in_sqrt``
    # (1/sqrt(v + eps) rather than 1/(sqrt(v) + eps)), ``lr_scale`` (the step's sign and size) and
    # ``float32_mu_product`` (off: optax keeps NAdam's product in the run's dtype, torch in its default dtype).
    alias_defaults: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    # ``run_check(options, lr, steps)``: refuse values torch cannot step through for that many steps.
    run_check: Callable[[Mapping[str, Any], float, int], None] | None = None
    # The class takes ``fused=True`` (torch 2.13: SGD, Adam, AdamW, Adagrad); every class takes ``foreach``.
    fused: bool = False
    # torch's default ``weight_decay`` for the class (AdamW: 1e-2; the others 0).
    default_weight_decay: float = 0.0
    # Options that are structure though not booleans (Muon's ns_steps loop count, adjust_lr_fn's name):
    # hashable values compiled in, never traced.
    static: tuple[str, ...] = ()
    # Options xreg reads that the torch class does not take (Muon's ``others``: the class of the rest).
    xreg_only: tuple[str, ...] = ()
    # Muon: torch's class takes only 2-D parameters; the rest go to ``options['others']`` with its torch
    # defaults, the same lr and weight_decay (users pair them so).
    two_d_only: bool = False
    # Which common options the class takes (torch 2.13's Muon: neither maximize nor foreach).
    common: tuple[str, ...] = ("maximize", "foreach")

    def __post_init__(self) -> None:
        """Every class's common options join its own: ``maximize`` (a rule), ``foreach``/``fused`` (how torch
        loops over tensors: the same rule, round-off apart)."""
        common = {k: v for k, v in COMMON.items() if (k in self.common) or (k == "fused" and self.fused)}
        checks = {k: c for k, c in (("maximize", check_bool), ("foreach", _switch), ("fused", _switch)) if k in common}
        object.__setattr__(self, "defaults", {**self.defaults, **common})
        object.__setattr__(self, "checks", {**self.checks, **checks})

    def check_run(self, options: Mapping[str, Any], lr: float, steps: int) -> None:
        """Refuse a run torch cannot step through (raised before any backend runs)."""
        if self.run_check is not None:
            self.run_check(options, lr, steps)

    def hparams(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The numeric options (floats and pairs of floats): traced hyperparameters, not structure. A
        paired class's (Muon's others) under ``paired``."""
        out = {k: v for k, v in options.items()
               if not isinstance(v, bool) and k not in IMPLEMENTATION and k not in self.static and k not in self.xreg_only}  # fmt: skip
        if self.two_d_only:
            other = get(options["others"])
            out["paired"] = other.hparams(other.resolve({}))
        return out

    def structure_flags(self, options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """Boolean options, the static ones and the flags derived from numbers (e.g. momentum > 0), sorted,
        hashable; a paired class's flags prefixed ``paired.``."""
        out = {k: v for k, v in options.items() if isinstance(v, bool) or k in self.static or k in self.xreg_only}
        out.update(self.flags(options))
        if self.two_d_only:
            other = get(options["others"])
            out.update({f"paired.{k}": v for k, v in other.structure_flags(other.resolve({}))})
        return tuple(sorted(out.items(), key=lambda kv: kv[0]))

    def paired_flags(self, flags: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
        """The paired class's flags out of a structure's (the ``paired.`` ones, unprefixed)."""
        return tuple((k[len("paired."):], v) for k, v in flags if k.startswith("paired."))

    def resolve(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """Fill torch defaults, check every option, reject unknown names and the flags xreg cannot honour."""
        for key in options:
            if key in REFUSED:
                raise XregInputError(f"torch.optim.{self.torch_class}({key}=...) is not supported: {REFUSED[key]}")
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            allowed = ", ".join(repr(k) for k in self.defaults) or "none"
            raise XregInputError(
                f"Unknown option {unknown[0]!r} for optimizer '{self.name}'. Allowed options: {allowed}."
            )
        out = dict(self.defaults)
        for key, value in options.items():
            out[key] = self.checks[key](key, value)
        for check in self.cross_checks:
            check(out)
        return out


# Options every class has (``fused``: SGD, Adam, AdamW, Adagrad), with torch's defaults; a translation
# shows them only where they differ from these.
COMMON = {"maximize": False, "foreach": None, "fused": None}
# The ones that say how torch loops over the tensors, not what it computes.
IMPLEMENTATION = ("foreach", "fused")
# torch flags xreg cannot honour, and why (refused with one line).
REFUSED = {
    "capturable": "it keeps the step count and lr on the device for CUDA-graph capture; xreg steps eagerly "
                  "on the CPU (or one device) and compares every step, so there is nothing for it to change.",
    "differentiable": "it lets autograd differentiate through optimizer.step() (meta-learning); xreg compares "
                      "the updates themselves and never backpropagates through them.",
}


def _switch(name: str, value: Any) -> bool | None:
    """foreach / fused: None (torch chooses), true or false."""
    return None if value is None or value == "none" else check_bool(name, value)


def _asgd_run(o: Mapping[str, Any], lr: float, steps: int) -> None:
    # torch: eta_t = lr / (1 + lambd*lr*t)**alpha in Python floats, which raises OverflowError
    try:
        denominator = (1 + o["lambd"] * lr * steps) ** o["alpha"]
    except OverflowError:
        denominator = math.inf
    if not math.isfinite(denominator):
        raise XregInputError(
            f"torch.optim.ASGD cannot run lambd={o['lambd']:g}, alpha={o['alpha']:g} with lr={lr:g} for {steps} steps: "
            "its step size lr/(1 + lambd*lr*t)**alpha overflows (torch raises OverflowError); use a smaller alpha or lambd."
        )


def _sgd_cross(o: Mapping[str, Any]) -> None:
    # torch.optim.SGD raises "Nesterov momentum requires a momentum and zero dampening".
    if o["nesterov"] and (o["momentum"] <= 0 or o["dampening"] != 0):
        raise XregInputError(
            "The 'nesterov' parameter requires momentum > 0 and dampening = 0 "
            f"(torch.optim.SGD rule). Got momentum={o['momentum']!r}, dampening={o['dampening']!r}."
        )


def _adam_cause(o: Mapping[str, Any], convention: str, all_decayed: bool) -> str | None:
    if o["amsgrad"]:
        return ("optax AMSGrad takes the max of the bias-corrected v_hat; torch takes the max of the raw v "
                "and then divides by sqrt(1-b2^t)")  # fmt: skip
    if convention != "decoupled":
        return "optax.adamw decays decoupled (w <- w - lr*lam*w); torch Adam(weight_decay) adds lam*w to the gradient"
    return None if all_decayed else "optax.adamw without a mask decays the bias too (torch: bias in a wd=0 group)"


def _adafactor_eps(name: str, v: Any) -> tuple[float | None, float]:
    """torch Adafactor's eps = (eps1, eps2): eps1 None (the dtype's machine epsilon) or >= 0, eps2 >= 0."""
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise XregInputError(f"The '{name}' parameter must be a pair (eps1 or none, eps2). Got {v!r} instead.")
    first = None if v[0] is None or v[0] in ("none", "None") else _nonneg(f"{name}[0]", v[0])
    return (first, _nonneg(f"{name}[1]", v[1]))


def _nonpositive(name: str, v: Any) -> float:
    return check_float(name, v, -math.inf, 0.0)


def _at_least_one(name: str, v: Any) -> float:
    return check_float(name, v, 1.0)


def _ns_coefficients(name: str, v: Any) -> tuple[float, float, float]:
    if not (isinstance(v, (tuple, list)) and len(v) == 3):
        raise XregInputError(f"The '{name}' parameter must be three floats (a, b, c). Got {v!r} instead.")
    return tuple(check_float(f"{name}[{i}]", x, -math.inf) for i, x in enumerate(v))  # type: ignore[return-value]


def _ns_steps(name: str, v: Any) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return check_int(name, v, 1, 99)  # torch: "Number of steps must be less than 100"


def _adjust_lr_fn(name: str, v: Any) -> str | None:
    if v is None or v in ("none", "None"):
        return None
    return check_choice(name, v, ("original", "match_rms_adamw"))


# The classes Muon's other parameters may go to: those whose torch weight_decay is decoupled, as Muon's
# (native, or through decoupled_weight_decay=True), and whose step is lr times a direction.
MUON_OTHERS = ("adamw", "adam", "nadam", "radam")


def _muon_others(name: str, v: Any) -> str:
    return check_choice(name, v, MUON_OTHERS)


def muon_ratio(adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    """torch's ``_adjust_lr``: the lr of a (A, B) parameter is lr * ratio."""
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, A / B))
    return 0.2 * math.sqrt(max(A, B))


def _muon_cause(o: Mapping[str, Any]) -> str:
    """What optax.contrib.muon(lr, ns_coeffs, ns_steps, beta=momentum, eps, weight_decay=wd, nesterov,
    adam_weight_decay=wd) does differently from torch's Muon paired with ``others`` (its weight decay,
    lr*wd*w, is torch's)."""
    parts = [
        "optax.contrib.muon debiases its momentum as Adam does (torch: B <- lerp(B, g, 1-mu), no correction)",
        "runs Newton-Schulz in the parameters' dtype (torch: in bfloat16, every product rounded)",
        "scales by sqrt(max(1, d1/d0)) of an (in, out) kernel, inverted on torch's (out, in) weights "
        "(torch: sqrt(max(1, out/in))" + (", or 0.2*sqrt(max(A, B)))" if o.get("adjust_lr_fn") == "match_rms_adamw" else ")"),
    ]
    if o.get("others", "adamw") == "adamw":
        parts.append("steps the other parameters by optax.adamw with Muon's eps and nesterov (torch AdamW: eps=1e-8, "
                     "no Nesterov) and no weight_decay mask")
    else:
        parts.append(f"steps the other parameters by optax.adamw (torch: {o['others']})")
    return "; ".join(parts)


def _adafactor_cause(o: Mapping[str, Any]) -> str:
    """What optax.adafactor(lr, decay_rate=-beta2_decay, clipping_threshold=d, weight_decay_rate=wd) does
    differently from torch.optim.Adafactor (its decay schedule 1 - t^-decay_rate and its update clipping
    by block rms are torch's)."""
    eps1, eps2 = o["eps"]
    parts = [
        "optax.adafactor factors only parameters whose two largest dimensions are >= 128 (min_dim_size_to_factor; "
        "torch factors every 2-D parameter)",
        f"adds eps=1e-30 to g^2 (torch: v floored at eps1^2, eps1={'the dtype epsilon' if eps1 is None else eps1})",
        "computes its decay 1 - t^-decay_rate in float32 (torch: a Python float; 1e-8 relative)",
        "scales by the lr itself (torch: min(lr, 1/sqrt(t)))",
        "decays by weight_decay_rate*w after the lr scaling (torch: w*(1 - lr*wd) before the update)",
    ]
    if eps2 != 1e-3:
        parts.append(f"floors the parameter scale rms(w) at 1e-3 (torch: eps2={eps2})")
    return "; ".join(parts)


_ADAM_CHECKS = {"betas": _betas, "eps": _nonneg, "amsgrad": check_bool}
_ADAM_FORMULA = (
    "m <- b1*m + (1-b1)*g; v <- b2*v + (1-b2)*g^2; [amsgrad: vmax <- max(vmax, v), v := vmax]; "
    "w <- w - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)"
)

OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in [
        Optimizer(
            "sgd",
            "SGD",
            1e-3,
            {"momentum": 0.0, "dampening": 0.0, "nesterov": False},
            {"momentum": _unit, "dampening": _closed_unit, "nesterov": check_bool},
            "b <- g (t=1), b <- mu*b + (1-tau)*g (t>1); d <- g + mu*b if nesterov else b "
            "(d <- g when mu=0); w <- w - lr*d",
            cross_checks=(_sgd_cross,),
            flags=lambda o: {"momentum>0": o["momentum"] > 0, "dampening>0": o["dampening"] > 0},
            momentum_free=lambda o: o["momentum"] == 0,
            naive_alias="optax.sgd",
            fused=True,
            naive_cause=lambda o, c, a: (
                "optax.sgd has no dampening: its buffer is mu*b + g, torch's mu*b + (1-tau)*g" if o["dampening"] else None
            ),
        ),
        Optimizer(
            "adam",
            "Adam",
            1e-3,
            {"betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False},
            _ADAM_CHECKS,
            _ADAM_FORMULA,
            decoupled_flag=True,
            naive_alias="optax.adamw",
            fused=True,
            naive_conventions=("torch", "decoupled"),
            naive_cause=lambda o, c, a: _adam_cause(o, c, a),
        ),
        Optimizer(
            "adamw",
            "AdamW",
            1e-3,
            {"betas": (0.9, 0.999), "eps": 1e-8, "amsgrad": False},
            _ADAM_CHECKS,
            _ADAM_FORMULA,
            native_convention="decoupled",
            default_weight_decay=1e-2,
            naive_alias="optax.adamw",
            fused=True,
            naive_conventions=("torch", "decoupled"),
            naive_cause=lambda o, c, a: _adam_cause(o, c, a),
        ),
        Optimizer(
            "rmsprop",
            "RMSprop",
            1e-2,
            {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
            {"alpha": _closed_unit, "eps": _nonneg, "momentum": _unit, "centered": check_bool},
            "v <- a*v + (1-a)*g^2; [centered: gbar <- a*gbar + (1-a)*g, v~ = v - gbar^2]; "
            "d <- g/(sqrt(v~) + eps); [momentum: b <- mu*b + d, d := b]; w <- w - lr*d",
            flags=lambda o: {"momentum>0": o["momentum"] > 0},
            naive_alias="optax.rmsprop",
            alias_defaults=(
                ("optax.rmsprop defaults: decay=0.9 and eps inside the root", {"alpha": 0.9, "eps_in_sqrt": True}),
                ("decay=0.9 (optax.rmsprop's default) for torch's alpha", {"alpha": 0.9}),
                ("eps inside the root (optax.rmsprop's eps_in_sqrt=True)", {"eps_in_sqrt": True}),
            ),
            naive_cause=lambda o, c, a: (
                (f"optax.rmsprop defaults decay=0.9 (torch alpha={o['alpha']}) and " if o["alpha"] != 0.9 else "optax.rmsprop defaults ")
                + "eps_in_sqrt=True: 1/sqrt(v+eps) instead of torch's 1/(sqrt(v)+eps)"
            ),
        ),
        Optimizer(
            "adagrad",
            "Adagrad",
            1e-2,
            {"lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10},
            {"lr_decay": _nonneg, "initial_accumulator_value": _nonneg, "eps": _nonneg},
            "S <- S + g^2 (S0 = initial_accumulator_value); "
            "w <- w - lr/(1+(t-1)*lr_decay) * g/(sqrt(S) + eps)",
            flags=lambda o: {"lr_decay>0": o["lr_decay"] > 0},
            naive_alias="optax.adagrad",
            fused=True,
            alias_defaults=(
                ("optax.adagrad defaults: initial_accumulator_value=0.1, eps=1e-7 inside the root",
                 {"initial_accumulator_value": 0.1, "eps": 1e-7, "eps_in_sqrt": True}),
                ("initial_accumulator_value=0.1 (optax.adagrad's default)", {"initial_accumulator_value": 0.1}),
            ),
            naive_cause=lambda o, c, a: (
                f"optax.adagrad starts the accumulator at 0.1 (torch {o['initial_accumulator_value']}) and uses "
                f"eps=1e-7 inside the root (torch eps={o['eps']} outside)" + ("; it has no lr_decay" if o["lr_decay"] else "")
            ),
        ),
        Optimizer(
            "adamax",
            "Adamax",
            2e-3,
            {"betas": (0.9, 0.999), "eps": 1e-8},
            {"betas": _betas, "eps": _nonneg},
            "m <- b1*m + (1-b1)*g; u <- max(b2*u, |g| + eps); w <- w - lr/(1-b1^t) * m/u",
            naive_alias="optax.adamax",
        ),
        Optimizer(
            "nadam",
            "NAdam",
            2e-3,
            {"betas": (0.9, 0.999), "eps": 1e-8, "momentum_decay": 4e-3},
            {"betas": _betas, "eps": _nonneg, "momentum_decay": _nonneg},
            "mu_t = b1*(1 - 0.5*0.96^(t*psi)); P_t = P_{t-1}*mu_t; m, v as Adam; "
            "w <- w - lr*[(1-mu_t)/(1-P_t)*g + mu_{t+1}/(1-P_t*mu_{t+1})*m] / (sqrt(v/(1-b2^t)) + eps)",
            decoupled_flag=True,
            naive_alias="optax.nadam",
            alias_defaults=(("optax.nadam: momentum b1 at every step (torch's momentum_decay -> inf)",
                             {"momentum_decay": float("inf"), "float32_mu_product": False}),),
            naive_conventions=("torch", "decoupled"),
            naive_cause=lambda o, c, a: (
                "optax NAdam is Dozat's form with momentum b1 at every step; torch's momentum schedule "
                f"mu_t = b1*(1-0.5*0.96^(t*{o['momentum_decay']})) starts near b1/2"
            ),
        ),
        Optimizer(
            "radam",
            "RAdam",
            1e-3,
            {"betas": (0.9, 0.999), "eps": 1e-8},
            {"betas": _betas, "eps": _nonneg},
            "m, v as Adam; rho_t = rho_inf - 2t*b2^t/(1-b2^t); if rho_t > 5: "
            "w <- w - lr * m/(1-b1^t) * r_t * sqrt(1-b2^t)/(sqrt(v) + eps) else w <- w - lr*m/(1-b1^t)",
            decoupled_flag=True,
            naive_alias="optax.radam",
            naive_conventions=("torch", "decoupled"),
            naive_cause=lambda o, c, a: (
                "optax RAdam puts eps on sqrt(v_hat) and switches at rho_t >= 5; torch puts eps on raw sqrt(v), rho_t > 5"
            ),
        ),
        Optimizer(
            "adadelta",
            "Adadelta",
            1.0,
            {"rho": 0.9, "eps": 1e-6},
            {"rho": _closed_unit, "eps": _nonneg},
            "v <- rho*v + (1-rho)*g^2; d <- sqrt(u + eps)/sqrt(v + eps) * g; "
            "u <- rho*u + (1-rho)*d^2; w <- w - lr*d",
            naive_alias="optax.adadelta",
            alias_defaults=(("optax.adadelta(learning_rate=None): the direction is added, not subtracted (lr -> -1)",
                             {"lr_scale": -1.0}),),
            naive_cause=lambda o, c, a: (
                "optax.adadelta's learning_rate defaults to None: no sign flip, so it climbs the loss (torch lr=1.0)"
            ),
        ),
        Optimizer(
            "adafactor",
            "Adafactor",
            1e-2,
            {"beta2_decay": -0.8, "eps": (None, 1e-3), "d": 1.0},
            {"beta2_decay": _nonpositive, "eps": _adafactor_eps, "d": _at_least_one},
            "b_t = t^beta2_decay; 2-D: R <- lerp(R, rowmean(g^2), b_t), C <- lerp(C, colmean(g^2), b_t), "
            "v = R C / mean(R); 1-D: v <- lerp(v, g^2, b_t); u = g / sqrt(max(v, eps1^2)); "
            "a = max(eps2, rms(w)) * min(lr, 1/sqrt(t)); w <- w*(1 - lr*wd) - a/max(1, rms(u)/d) * u",
            native_convention="decoupled",
            own_step_size=True,
            decays_inside=True,
            naive_alias="optax.adafactor",
            naive_conventions=("decoupled",),
            naive_cause=lambda o, c, a: _adafactor_cause(o),
        ),
        Optimizer(
            "muon",
            "Muon",
            1e-3,
            {"momentum": 0.95, "nesterov": True, "ns_coefficients": (3.4445, -4.775, 2.0315), "eps": 1e-7,
             "ns_steps": 5, "adjust_lr_fn": None, "others": "adamw"},
            {"momentum": _nonneg, "nesterov": check_bool, "ns_coefficients": _ns_coefficients, "eps": _nonneg,
             "ns_steps": _ns_steps, "adjust_lr_fn": _adjust_lr_fn, "others": _muon_others},
            "2-D parameters: B <- lerp(B, g, 1-mu); U = lerp(g, B, mu) if nesterov else B; O = NS_k(U) in bfloat16 "
            "(X <- U/||U||, k times: A = X X^T, X <- a X + (b A + c A A) X); w <- w*(1 - lr*wd) - lr*r*O, "
            "r = sqrt(max(1, A/B)) (or 0.2*sqrt(max(A, B))); other parameters: the paired class (others, default AdamW)",
            native_convention="decoupled",
            default_weight_decay=0.1,
            static=("ns_steps", "adjust_lr_fn"),
            xreg_only=("others",),
            two_d_only=True,
            common=(),
            naive_alias="optax.contrib.muon",
            naive_conventions=("decoupled",),
            naive_cause=lambda o, c, a: _muon_cause(o),
        ),
        Optimizer(
            "asgd",
            "ASGD",
            1e-2,
            {"lambd": 1e-4, "alpha": 0.75, "t0": 1e6},
            {"lambd": _nonneg, "alpha": _nonneg, "t0": _nonneg},
            "w <- w*(1 - lambd*eta_t) - eta_t*g; eta_1 = lr, eta_t = lr/(1 + lambd*lr*(t-1))^alpha "
            "(torch stores eta in its default dtype; the running average ax is not fed back into w)",
            momentum_free=lambda o: True,
            own_step_size=True,
            run_check=_asgd_run,
            naive_alias="optax.sgd",
            naive_cause=lambda o, c, a: (
                "optax has no ASGD: the lambd decay w*(1-lambd*eta_t) and the eta_t step-size schedule are dropped"
            ),
        ),
    ]
}


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


def check_naive(name: str, convention: str) -> None:
    """A naive port translates torch's own ``weight_decay``: the coupled form, or the decoupled one."""
    allowed = get(name).naive_conventions
    if convention not in allowed:
        shown = " or ".join(repr(c) for c in allowed)
        raise XregInputError(
            f"A naive port of '{name}' translates torch's weight_decay; use convention {shown}. "
            f"Got {convention!r} instead."
        )
