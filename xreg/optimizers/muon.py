"""2-D parameters: B <- lerp(B, g, 1-mu); U = lerp(g, B, mu) if nesterov else B; O = NS_k(U) in bfloat16 (X <- U/||U||, k times: A = X X^T, X <- a X + (b A + c A A) X); w <- w*(1 - lr*wd) - lr*r*O, r = sqrt(max(1, A/B)) (or 0.2*sqrt(max(A, B))); other parameters: the paired class (others, default AdamW)

torch.optim.Muon (torch 2.9+) takes only 2-D parameters; the others go to the paired class (``others``)
with its torch defaults, the same lr and weight_decay (users pair them so). torch's decoupled decay
``w*(1 - lr*wd)`` runs before the update, as AdamW's. Newton-Schulz runs in bfloat16 with every rounding
where torch's CPU kernels round (:mod:`xreg.optimizers._kernels`).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple

import numpy as np

from xreg.core.checks import XregInputError, check_bool, check_choice, check_float
from xreg.optimizers import _kernels
from xreg.optimizers.base import Naive, Optimizer, Options, formula_of, nonneg, whole
from xreg.optimizers.link import Link, Shown, code_or_none

# The classes Muon's other parameters may go to: those whose torch weight_decay is decoupled, as Muon's
# (native, or through decoupled_weight_decay=True), and whose step is lr times a direction.
OTHERS = ("adamw", "adam", "nadam", "radam")
MATRIX, REST = "muon", "others"  # optax.partition's labels


def ratio(adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    """torch's ``_adjust_lr``: the lr of a (A, B) parameter is lr * ratio."""
    A, B = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, A / B))
    return 0.2 * math.sqrt(max(A, B))


class Reference:
    """Muon on the 2-D parameters (momentum lerp, Nesterov lerp, Newton-Schulz in bfloat16, the lr scaled by
    the shape rule); the others stepped by the paired class's reference on their slice."""

    def __init__(self, o, flags, theta, layout=None):
        from xreg.optimizers import get

        self.layout, self.o, self.flags = layout, o, flags
        self.matrices = [n for n in layout.shapes if len(layout.shapes[n]) == 2]
        rest = [n for n in layout.shapes if n not in self.matrices]
        self.rest = np.concatenate([np.arange(layout.slices[n].start, layout.slices[n].stop) for n in rest]) if rest else None
        pflags = dict(OPTIMIZERS[0].paired_flags(tuple(flags.items())))
        self.paired = get(flags["others"]).reference(dict(o["paired"]), pflags, theta[self.rest]) if rest else None
        self.buf: dict[str, np.ndarray] = {}

    def step(self, theta, g, lr, t, decay=None):
        out = theta.copy()
        if self.paired is not None:
            out[self.rest] = self.paired.step(theta[self.rest], g[self.rest], lr, t)
        mu = float(self.o["momentum"])
        for n in self.matrices:
            sl, shape = self.layout.slices[n], self.layout.shapes[n]
            gr = g[sl].reshape(shape)
            buf = _kernels.lerp(self.buf.get(n, np.zeros_like(gr)), gr, 1 - mu)
            self.buf[n] = buf
            u = _kernels.lerp(gr, buf, mu) if self.flags["nesterov"] else buf
            O = _kernels.newton_schulz(u, tuple(float(x) for x in self.o["ns_coefficients"]), self.flags["ns_steps"], float(self.o["eps"]))
            adjusted = float(lr) * ratio(self.flags["adjust_lr_fn"], shape)
            out[sl] = theta[sl] + (-adjusted) * O.astype(theta.dtype).reshape(-1)
        return out


def newton_schulz(G, coefficients, steps: int, eps):
    """torch's ``_zeropower_via_newtonschulz`` on a 2-D JAX array: the bfloat16 result, held as float32."""
    import jax.numpy as jnp

    return _kernels.newton_schulz(G, coefficients, steps, eps, jnp)


def matrix_labels(params):
    """optax.partition's labels for torch's Muon pairing: 'muon' on 2-D leaves, 'others' elsewhere."""
    import jax

    return jax.tree.map(lambda p: MATRIX if p.ndim == 2 else REST, params)


class MuonState(NamedTuple):
    buf: Any


def scale_by_torch_muon(momentum, ns_coefficients, eps, *, nesterov: bool = True, ns_steps: int = 5,
                        adjust_lr_fn: str | None = None):  # fmt: skip
    """torch.optim.Muon's direction on 2-D leaves, before the lr: ``B <- lerp(B, g, 1-mu)``,
    ``U = lerp(g, B, mu)`` (nesterov) or ``B``, ``O = NS(U)`` in bfloat16, ``d = r*O`` with torch's shape
    ratio ``r`` (``sqrt(max(1, A/B))``; ``match_rms_adamw``: ``0.2*sqrt(max(A, B))``)."""
    import jax
    import jax.numpy as jnp
    import optax

    from xreg.optimizers._optax import narrow, wide

    def init(params):
        return MuonState(jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        def moment(g, B):
            return _kernels.lerp(B, g, narrow(1 - wide(momentum), g.dtype), jnp)

        def direction(g, B):
            dt = g.dtype
            U = _kernels.lerp(g, B, narrow(momentum, dt), jnp) if nesterov else B
            O = newton_schulz(U, ns_coefficients, ns_steps, eps)
            return narrow(ratio(adjust_lr_fn, g.shape), dt) * O.astype(dt)

        buf = jax.tree.map(moment, updates, state.buf)
        return jax.tree.map(direction, updates, buf), MuonState(buf)

    return optax.GradientTransformation(init, update)


def direction(flags: Mapping[str, Any], o, lr, decoupled=None) -> list[Link]:
    """torch's Muon on the 2-D leaves, the paired class's direction on the rest (optax.partition)."""
    import optax

    from xreg.optimizers import get

    w = o.wide
    muon = Link("twins.scale_by_torch_muon", scale_by_torch_muon, (w["momentum"], tuple(w["ns_coefficients"]), w["eps"]),
                {"nesterov": flags["nesterov"], "ns_steps": flags["ns_steps"], "adjust_lr_fn": flags["adjust_lr_fn"]})  # fmt: skip
    paired = dict(OPTIMIZERS[0].paired_flags(tuple(flags.items())))
    rest = get(flags["others"]).direction(paired, Options(o["paired"], o.wide["paired"]), lr)
    if len(rest) == 1:
        rest_text, rest_code, rest_tx = rest[0].text, code_or_none(rest[0]), lambda: rest[0].transform
    else:
        rest_text = "chain(" + ", ".join(x.text for x in rest) + ")"
        codes = [code_or_none(x) for x in rest]
        rest_code = None if None in codes else "optax.chain(" + ", ".join(codes) + ")"
        rest_tx = lambda: optax.chain(*(x.transform for x in rest))  # noqa: E731
    muon_code = code_or_none(muon)
    code = None if None in (muon_code, rest_code) else f"{{{MATRIX!r}: {muon_code}, {REST!r}: {rest_code}}}"
    transforms = Shown(lambda: {MATRIX: muon.transform, REST: rest_tx()}, f"{{{MATRIX!r}: {muon.text}, {REST!r}: {rest_text}}}", code)
    labels = Shown(matrix_labels, "matrix_labels", "xreg.twins.matrix_labels")
    return [Link("partition", lambda t, lab: optax.partition(t(), lab), (transforms, labels))]


def naive(n: Naive) -> Link:
    import optax.contrib

    o = n.options
    return Link("contrib.muon", optax.contrib.muon, (n.lr,), {
        "ns_coeffs": tuple(o["ns_coefficients"]), "ns_steps": n.flags["ns_steps"], "beta": o["momentum"],
        "eps": o["eps"], "weight_decay": n.lam, **n.masked(), "nesterov": n.flags["nesterov"], "adam_weight_decay": n.lam})  # fmt: skip


def naive_cause(o: Mapping[str, Any], convention: str, all_decayed: bool) -> str:
    """What optax.contrib.muon(lr, ns_coeffs, ns_steps, beta=momentum, eps, weight_decay=wd, nesterov,
    adam_weight_decay=wd) does differently from torch's Muon paired with ``others`` (its weight decay,
    lr*wd*w, is torch's)."""
    parts = [
        "optax.contrib.muon debiases its momentum as Adam does (torch: B <- lerp(B, g, 1-mu), no correction)",
        "runs Newton-Schulz in the parameters' dtype (torch: in bfloat16, every product rounded)",
        "scales by sqrt(max(1, d1/d0)) of an (in, out) kernel, inverted on torch's (out, in) weights "
        "(torch: sqrt(max(1, out/in))" + (", or 0.2*sqrt(max(A, B)))" if o.get("adjust_lr_fn") == "match_rms_adamw" else ")"),
    ]
    if o.get("others", OTHERS[0]) == OTHERS[0]:
        parts.append("steps the other parameters by optax.adamw with Muon's eps and nesterov (torch AdamW: eps=1e-8, "
                     "no Nesterov) and no weight_decay mask")
    else:
        parts.append(f"steps the other parameters by optax.adamw (torch: {o['others']})")
    return "; ".join(parts)


def _coefficients(name: str, v: Any) -> tuple[float, float, float]:
    if not (isinstance(v, (tuple, list)) and len(v) == 3):
        raise XregInputError(f"The '{name}' parameter must be three floats (a, b, c). Got {v!r} instead.")
    return tuple(check_float(f"{name}[{i}]", x, -math.inf) for i, x in enumerate(v))  # type: ignore[return-value]


def _adjust_lr_fn(name: str, v: Any) -> str | None:
    if v is None or v in ("none", "None"):
        return None
    return check_choice(name, v, ("original", "match_rms_adamw"))


OPTIMIZERS = (
    Optimizer(
        "muon", "Muon", 1e-3,
        {"momentum": 0.95, "nesterov": True, "ns_coefficients": (3.4445, -4.775, 2.0315), "eps": 1e-7,
         "ns_steps": 5, "adjust_lr_fn": None, "others": OTHERS[0]},
        {"momentum": nonneg, "nesterov": check_bool, "ns_coefficients": _coefficients, "eps": nonneg,
         "ns_steps": lambda n, v: whole(n, v, 1, 99),  # torch: "Number of steps must be less than 100"
         "adjust_lr_fn": _adjust_lr_fn, "others": lambda n, v: check_choice(n, v, OTHERS)},
        formula_of(__doc__),
        reference=Reference, direction=direction, naive=naive, naive_alias="optax.contrib.muon",
        naive_conventions=("decoupled",), naive_cause=naive_cause,
        native_convention="decoupled",
        default_weight_decay=0.1,
        static=("ns_steps", "adjust_lr_fn"),
        xreg_only=("others",),
        two_d_only=True,
        bf16_kernel=True,
        common=(),
        twins=(scale_by_torch_muon, matrix_labels, newton_schulz),
        order=100,
    ),
)  # fmt: skip
