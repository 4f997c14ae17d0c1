"""What every optimizer module states: the schema (:class:`Optimizer`), the default hooks, and the checks
its options share.

One hyperparameter, one name: every option keeps its ``torch.optim`` name (``momentum``, ``betas``,
``alpha``...). Backends translate to framework names inside themselves. Learning rate and weight decay
are not options: they are ``ExperimentSpec.lr`` and ``ExperimentSpec.lam``.

Notation in the formulas: ``g`` is the gradient after the regularization convention has been applied
(see :mod:`xreg.semantics.conventions`), ``lr`` the current (scheduled) learning rate, ``t`` the 1-based step.

Hooks take plain mappings (options, flags), never a ``Structure``; frameworks are imported inside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from xreg.core.checks import XregInputError, check_bool, check_float, check_int
from xreg.optimizers.link import Link, Shown

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
}  # fmt: skip


# ---- checks of option values, in torch's words ---------------------------------------------------------
def unit(name: str, v: Any) -> float:  # [0, 1)
    return check_float(name, v, 0.0, 1.0, closed="left")


def closed_unit(name: str, v: Any) -> float:  # [0, 1]
    return check_float(name, v, 0.0, 1.0)


def nonneg(name: str, v: Any) -> float:  # [0, inf)
    return check_float(name, v, 0.0)


def nonpositive(name: str, v: Any) -> float:
    return check_float(name, v, -math.inf, 0.0)


def at_least_one(name: str, v: Any) -> float:
    return check_float(name, v, 1.0)


def betas(name: str, v: Any) -> tuple[float, float]:
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise XregInputError(f"The '{name}' parameter must be a pair of floats in the range [0, 1). Got {v!r} instead.")
    return (unit(f"{name}[0]", v[0]), unit(f"{name}[1]", v[1]))


def pair(name: str, v: Any) -> tuple[Any, Any]:
    if not (isinstance(v, (tuple, list)) and len(v) == 2):
        raise XregInputError(f"The '{name}' parameter must be a pair of floats. Got {v!r} instead.")
    return (v[0], v[1])


def whole(name: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return check_int(name, v, lo, hi)


def switch(name: str, value: Any) -> bool | None:
    """foreach / fused: None (torch chooses), true or false."""
    return None if value is None or value == "none" else check_bool(name, value)


def formula_of(doc: str | None) -> str:
    """A module docstring's first paragraph, on one line: the optimizer's update equations."""
    first = (doc or "").strip().split("\n\n")[0]
    return " ".join(line.strip() for line in first.splitlines())


class Options(dict):
    """The optimizer's options in the run's dtype (for stock optax links); ``.wide`` holds them in float64
    for the twins, which compute torch's scalar coefficients in Python-float precision. When printing
    (Python floats), both are the same values."""

    def __init__(self, options: Mapping[str, Any], wide: Mapping[str, Any] | None = None):
        super().__init__(options)
        self.wide = options if wide is None else wide


@dataclass(frozen=True)
class Naive:
    """What a naive port's hook is handed: the options (the run's dtype), the structure's flags, the lr
    (traced or shown), the one decay strength ``lam`` and its mask (None: every parameter), whether the
    convention is coupled, and ``decay`` (``optax.add_decayed_weights(lam, mask)`` as a link)."""

    options: Mapping[str, Any]
    flags: Mapping[str, Any]
    lr: Any
    lam: Any
    mask: Shown | None
    coupled: bool
    decay: Link

    def masked(self, key: str = "weight_decay_mask") -> dict[str, Any]:
        return {key: self.mask} if self.mask is not None else {}


@dataclass(frozen=True)
class OptionCause:
    """A cause a diagnosis re-simulates by changing one of the optimizer's own options: ``overrides``
    (a fixed change) or ``fit`` (the option whose value is fitted from ``x0`` within ``bounds``);
    ``fixes(options, x) -> (base side's fix, other side's fix)``."""

    code: str
    what: str
    overrides: Mapping[str, Any] | None = None
    fit: str | None = None
    x0: float = 0.0
    bounds: tuple = ()
    fixes: Callable[[Mapping[str, Any], float], tuple[str, str]] = lambda o, x: ("", "")


def float32_default(meta: Mapping[str, Any]) -> bool:
    """A recorded torch run left at torch's default dtype, float32 (its scalar state is float32 numbers)."""
    return meta.get("framework") == "torch" and meta.get("default_dtype", "float32") == "float32"


def _no_naive(n: Naive) -> Link:
    raise NotImplementedError


@dataclass(frozen=True)
class Optimizer:
    """One torch optimizer: its defaults (torch's), per-option checks, update equations, and the hooks the
    backends, the diagnosis and the translations call. Its module's docstring is its formula."""

    name: str
    torch_class: str
    default_lr: float
    defaults: Mapping[str, Any]
    checks: Mapping[str, Callable[[str, Any], Any]]
    formula: str
    # the hand-written NumPy reference: ``reference(options, flags, theta, layout)``, an object whose
    # ``step(theta, g, lr, t, decay=None)`` returns the new flat parameters (``decay``: lr*c per entry of a
    # decoupled decay the class applies inside its own step, ``decays_inside``)
    reference: Callable[..., Any]
    # the optax direction: ``direction(flags, options, lr, decoupled=None) -> [Link]`` (torch: w <- w - lr*d;
    # an ``own_step_size`` class returns the step itself and takes its decoupled decay in ``decoupled``)
    direction: Callable[..., list[Link]]
    # the naive optax alias a user writes first: ``naive(Naive) -> Link``
    naive: Callable[[Naive], Link] = _no_naive
    naive_alias: str = ""
    # the conventions a naive port can translate, and why it drifts from torch (None where it is exact):
    # ``naive_cause(options, convention, decays_everything)``
    naive_conventions: tuple[str, ...] = ("coupled",)
    naive_cause: Callable[[Mapping[str, Any], str, bool], str | None] = lambda o, c, all_decayed: None
    # The convention torch applies for `weight_decay=lam` on this class: 'coupled' (L2 in the gradient)
    # for all but the decoupled classes (AdamW, Adafactor, Muon).
    native_convention: str = "coupled"
    # False: the class takes no ``weight_decay`` at all (Rprop): L2 in the loss and a decoupled decay are its conventions
    takes_weight_decay: bool = True
    cross_checks: tuple[Callable[[Mapping[str, Any]], None], ...] = field(default=())
    # The class takes `decoupled_weight_decay=True` (torch 2.13: Adam, NAdam, RAdam).
    decoupled_flag: bool = False
    # The registry names of this rule with the other decay, where torch spells it as another class
    # (Adam decoupled is AdamW; AdamW coupled is Adam).
    decoupled_form: str | None = None
    coupled_form: str | None = None
    # Options that change the computation's shape, as booleans of the resolved options: they belong to
    # the (hashable, compiled-once) structure; every other option is a number and a traced hyperparameter.
    flags: Callable[[Mapping[str, Any]], dict[str, bool]] = lambda o: {}
    # No momentum buffer: a coupled decay is then exactly 1 - lr*c per step (SGD without momentum, ASGD).
    momentum_free: Callable[[Mapping[str, Any]], bool] = lambda o: False
    # The step is w <- w - lr*g itself (SGD without momentum).
    plain: Callable[[Mapping[str, Any]], bool] = lambda o: False
    # The update reads the step count t (bias corrections, step-size schedules): a resume that restarts it differs.
    counts_steps: Callable[[Mapping[str, Any]], bool] = lambda o: False
    # What a coupled decay goes through that a decoupled one does not (a translation's words).
    coupled_through: str = "adaptive scaling"
    # The class steps by a size of its own that replaces the lr (ASGD's eta, Adafactor's, Rprop's): its
    # direction already holds the step, so the chain ends in a sign flip rather than a multiplication by lr_t.
    own_step_size: bool = False
    # torch applies its decoupled decay inside the step, which reads w before it (Adafactor's rms(w))
    decays_inside: bool = False
    # The stock optax alias's defaults where they differ from torch's, in torch's option names: each a
    # (what differs, overrides) a diagnosis re-simulates. Beyond torch's options: ``eps_in_sqrt``
    # (1/sqrt(v + eps) rather than 1/(sqrt(v) + eps)), ``lr_scale`` (the step's sign and size) and
    # ``float32_mu_product`` (off: optax keeps NAdam's product in the run's dtype, torch in its default dtype).
    alias_defaults: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    # Causes a diagnosis re-simulates by changing the class's own options (SGD's dampening).
    option_causes: Callable[[Mapping[str, Any]], list[OptionCause]] = lambda o: []
    # ``recorded(options, meta)``: the options as a recorded run of the class computed them (torch keeps
    # NAdam's mu_product in its default dtype: float32 unless the program set float64).
    recorded: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]] = lambda o, meta: o
    # The options ``recorded`` sets (not torch's: a printed fix leaves them out).
    roundings: tuple[str, ...] = ()
    # ``sum_loss(options, lr, M)``: the settings (beyond weight_decay*M) under which a sum over M rows steps
    # as the mean loss does; None where the class is not invariant to the gradient's scale.
    sum_loss: Callable[[Mapping[str, Any], float, int], dict[str, float] | None] = lambda o, lr, M: None
    # ``decoupled_alias(lr, wd, options, mask_code)``: a stock optax alias that is the decoupled form, or None.
    decoupled_alias: Callable[[float, float, Mapping[str, Any], str], str | None] = lambda lr, wd, o, mask: None
    # What a translation adds under "no exact equivalent" (roundings a plain loop makes).
    notes: tuple[str, ...] = ()
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
    # torch computes the class's step with bfloat16 matmuls, whose CPU kernels a backend must probe (Muon).
    bf16_kernel: bool = False
    # Which common options the class takes (torch 2.13's Muon: neither maximize nor foreach).
    common: tuple[str, ...] = ("maximize", "foreach")
    # The class's optax twins, importable from ``xreg.twins`` by their names.
    twins: tuple[Callable[..., Any], ...] = ()
    # The place of the class in the table (the README's order).
    order: int = 0
    # Whose rule it is: 'torch' (a torch.optim class) or 'keras' (a keras.optimizers class: ``keras_class``, Keras's
    # option names and defaults; the torch backend runs ``torch_twin()``, a torch.optim.Optimizer of Keras's rule).
    framework: str = "torch"
    keras_class: str = ""
    torch_twin: Callable[[], type] | None = None

    def __post_init__(self) -> None:
        """Every class's common options join its own: ``maximize`` (a rule), ``foreach``/``fused`` (how torch
        loops over tensors: the same rule, round-off apart)."""
        common = {k: v for k, v in COMMON.items() if (k in self.common) or (k == "fused" and self.fused)}
        checks = {k: c for k, c in (("maximize", check_bool), ("foreach", switch), ("fused", switch)) if k in common}
        object.__setattr__(self, "defaults", {**self.defaults, **common})
        object.__setattr__(self, "checks", {**self.checks, **checks})

    @property
    def source(self) -> str:
        """The class as its framework spells it: ``torch.optim.SGD``, ``keras.optimizers.SGD``."""
        return f"keras.optimizers.{self.keras_class}" if self.framework == "keras" else f"torch.optim.{self.torch_class}"

    @property
    def default_convention(self) -> str:
        """The convention a run of the class uses unless told: what torch's ``weight_decay`` means on it
        (coupled; decoupled for AdamW, Adafactor, Muon), or, for a class without one (Rprop), a decoupled
        decay ``w <- w - lr*lam*w`` before each step."""
        return self.native_convention if self.takes_weight_decay else "decoupled"

    def torch_form(self, kind: str) -> tuple[str, tuple[str, ...]] | None:
        """The torch class and extra arguments that apply ``weight_decay`` as ``kind`` ('coupled' or
        'decoupled') for this rule: itself, its sibling class (Adam <-> AdamW), the class with
        ``decoupled_weight_decay=True``, or None where torch has no such form (the decay is then a line of
        the loop, or L2 in the loss)."""
        from xreg.optimizers import get

        if not self.takes_weight_decay:
            return None
        native = "decoupled" if self.native_convention == "decoupled" else "coupled"
        if kind == native:
            return self.torch_class, ()
        sibling = self.decoupled_form if kind == "decoupled" else self.coupled_form
        if sibling is not None:
            return get(sibling).torch_class, ()
        if kind == "decoupled" and self.decoupled_flag:
            return self.torch_class, ("decoupled_weight_decay=True",)
        return None

    def check_run(self, options: Mapping[str, Any], lr: float, steps: int) -> None:
        """Refuse a run torch cannot step through (raised before any backend runs)."""
        if self.run_check is not None:
            self.run_check(options, lr, steps)

    def hparams(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """The numeric options (floats and pairs of floats): traced hyperparameters, not structure. A
        paired class's (Muon's others) under ``paired``."""
        from xreg.optimizers import get

        out = {k: v for k, v in options.items()
               if not isinstance(v, bool) and k not in IMPLEMENTATION and k not in self.static and k not in self.xreg_only}  # fmt: skip
        if self.two_d_only:
            other = get(options["others"])
            out["paired"] = other.hparams(other.resolve({}))
        return out

    def structure_flags(self, options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
        """Boolean options, the static ones and the flags derived from numbers (e.g. momentum > 0), sorted,
        hashable; a paired class's flags prefixed ``paired.``."""
        from xreg.optimizers import get

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
                raise XregInputError(f"{self.source}({key}=...) is not supported: {REFUSED[key]}")
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
