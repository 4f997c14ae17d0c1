"""``xreg translate --from torch.nn.BatchNorm1d --option num_features=16``: one torch layer as the flax.nnx
code that computes the same thing, the naive port (torch's arguments copied, flax's defaults kept) and
what differs, each difference a row of :mod:`xreg.semantics.layers`.

    >>> t = translate_layer("torch.nn.LayerNorm", {"normalized_shape": 32})
    >>> ns = {}; exec(layers.FIX_IMPORTS, ns); layer = eval(t.flax_code, ns)

The flax code runs after :data:`xreg.semantics.layers.FIX_IMPORTS` and takes NHWC images where torch
takes NCHW (flax's layout); the tests run it beside the torch layer and compare them to round-off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

from xreg.core.checks import XregInputError, check_choice, check_float, check_int
from xreg.semantics import layers


@dataclass
class LayerTranslation:
    source: str
    options: dict[str, Any]
    torch_code: str
    flax_code: str
    naive_code: str
    differs: list[str] = field(default_factory=list)  # codes of xreg.semantics.layers
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        lines = ["torch:", f"  {self.torch_code}", f"flax.nnx (exact; after {layers.FIX_IMPORTS.replace(chr(10), '; ')}):",
                 f"  {self.flax_code}", "flax.nnx naive port (torch's arguments copied, flax's defaults kept):", f"  {self.naive_code}"]
        lines += [f"  differs: {c}: {layers.CONVENTIONS[c].naive}; {layers.CONVENTIONS[c].maps}" for c in self.differs]
        if not self.differs:
            lines.append("  differs: nothing")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _args(options: Mapping[str, Any], required: tuple[str, ...], defaults: Mapping[str, Any], layer: str) -> dict[str, Any]:
    unknown = sorted(set(options) - set(required) - set(defaults))
    if unknown:
        takes = ", ".join((*required, *defaults))
        raise XregInputError(f"torch.nn.{layer} has no option {unknown[0]!r} here ({f'it takes: {takes}' if takes else 'it takes none'}).")
    missing = [k for k in required if k not in options]
    if missing:
        raise XregInputError(f"torch.nn.{layer} needs --option {missing[0]}=VALUE.")
    return {**defaults, **options}


def _whole(name: str, v: Any, low: int = 1) -> int:
    if isinstance(v, (tuple, list)):
        raise XregInputError(f"The {name!r} option takes one whole number here (a square kernel, a 1-D normalized shape); "
                             f"got {','.join(str(x) for x in v)}.")  # fmt: skip
    return check_int(name, v, low, 1_000_000)


def _flag(name: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise XregInputError(f"The {name!r} option takes true or false; got {v!r}.")
    return v


def _linear(o: dict[str, Any], t: LayerTranslation) -> None:
    n_in, n_out, bias = _whole("in_features", o["in_features"]), _whole("out_features", o["out_features"]), _flag("bias", o["bias"])
    t.torch_code = f"nn.Linear({n_in}, {n_out}, bias={bias})"
    t.flax_code = t.naive_code = f"nnx.Linear({n_in}, {n_out}, use_bias={bias}, param_dtype=jnp.float64, rngs=nnx.Rngs(0))"
    t.differs.append("init")
    t.notes.append("load torch's weights as kernel = weight.T (flax's (in, out) layout), bias as it is")


def _conv(o: dict[str, Any], t: LayerTranslation) -> None:
    c_in, c_out, k = _whole("in_channels", o["in_channels"]), _whole("out_channels", o["out_channels"]), _whole("kernel_size", o["kernel_size"])
    s, p, bias = _whole("stride", o["stride"]), _whole("padding", o["padding"], 0), _flag("bias", o["bias"])
    t.torch_code = f"nn.Conv2d({c_in}, {c_out}, {k}, stride={s}, padding={p}, bias={bias})"
    call = lambda padding: (f"nnx.Conv({c_in}, {c_out}, ({k}, {k}), strides=({s}, {s}), padding={padding}, use_bias={bias}, "  # noqa: E731
                            "param_dtype=jnp.float64, rngs=nnx.Rngs(0))")
    t.flax_code, t.naive_code = call(f"(({p}, {p}), ({p}, {p}))"), call("'SAME'")
    if not (k % 2 == 1 and s == 1 and p == (k - 1) // 2):
        t.differs.append("same-padding")
    t.differs += ["kernel-layout", "init"]
    t.notes.append("flax takes NHWC images: x.transpose(0, 2, 3, 1); load kernel = weight.transpose(2, 3, 1, 0)")


def _batch_norm(o: dict[str, Any], t: LayerTranslation, layer: str) -> None:
    n = _whole("num_features", o["num_features"])
    eps, m = check_float("eps", o["eps"], 0.0, closed="neither"), check_float("momentum", o["momentum"], 0.0, 1.0, closed="right")
    t.torch_code = f"nn.{layer}({n}, eps={eps!r}, momentum={m!r})"
    t.flax_code = f"TorchBatchNorm({n}, momentum={1 - m!r}, epsilon={eps!r}, use_fast_variance=False, param_dtype=jnp.float64, rngs=nnx.Rngs(0))"
    t.naive_code = f"nnx.BatchNorm({n}, momentum={m!r}, epsilon={eps!r}, param_dtype=jnp.float64, rngs=nnx.Rngs(0))"
    t.differs += (["bn-momentum"] if m != 0.5 else []) + ["bn-running-var", "bn-stats-float32"]
    t.notes.append("TorchBatchNorm is nnx.BatchNorm with torch's unbiased running-variance update and statistics in "
                   "param_dtype; plain nnx.BatchNorm(momentum=1 - m, use_fast_variance=False) differs from torch in exactly those")  # fmt: skip


def _layer_norm(o: dict[str, Any], t: LayerTranslation) -> None:
    if isinstance(o["normalized_shape"], (tuple, list)):
        raise XregInputError("torch.nn.LayerNorm over several axes (normalized_shape=C,H,W): flatten them and translate "
                             "nn.LayerNorm(C*H*W) (flax's LayerNorm then normalizes the flattened row, as xreg's cnn does).")
    n = _whole("normalized_shape", o["normalized_shape"])
    eps = check_float("eps", o["eps"], 0.0, closed="neither")
    t.torch_code = f"nn.LayerNorm({n}, eps={eps!r})"
    t.flax_code = f"nnx.LayerNorm({n}, epsilon={eps!r}, use_fast_variance=False, param_dtype=jnp.float64, rngs=nnx.Rngs(0))"
    t.naive_code = f"nnx.LayerNorm({n}, param_dtype=jnp.float64, rngs=nnx.Rngs(0))"
    if eps != 1e-6:
        t.differs.append("ln-eps")


def _gelu(o: dict[str, Any], t: LayerTranslation) -> None:
    form = check_choice("approximate", o["approximate"], ("none", "tanh"))
    t.torch_code = f"nn.GELU(approximate={form!r})"
    t.flax_code = f"functools.partial(nnx.gelu, approximate={form == 'tanh'})"
    t.naive_code = "nnx.gelu"
    if form == "none":
        t.differs.append("gelu-form")


def _pool(o: dict[str, Any], t: LayerTranslation, layer: str) -> None:
    k = _whole("kernel_size", o["kernel_size"])
    fn = "max_pool" if layer == "MaxPool2d" else "avg_pool"
    t.torch_code = f"nn.{layer}({k})"
    t.flax_code = t.naive_code = f"functools.partial(nnx.{fn}, window_shape=({k}, {k}), strides=({k}, {k}))"
    t.notes.append("on NHWC maps; a remainder row or column is dropped in both (VALID)")


def _flatten(o: dict[str, Any], t: LayerTranslation) -> None:
    t.torch_code = "nn.Flatten()"
    t.flax_code = "lambda x: x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)"
    t.naive_code = "lambda x: x.reshape(x.shape[0], -1)"
    t.differs.append("flatten-order")


def _dropout(o: dict[str, Any], t: LayerTranslation) -> None:
    p = check_float("p", o["p"], 0.0, 1.0, closed="left")
    t.torch_code = f"nn.Dropout(p={p!r})"
    t.flax_code = t.naive_code = f"nnx.Dropout(rate={p!r}, rngs=nnx.Rngs(0))"
    t.notes.append("the same rule, x*keep/(1-p), with masks from another generator: runs compare step by step only with "
                   "shared masks (xreg draws them once, from --seed)")  # fmt: skip


LAYERS: dict[str, tuple[tuple[str, ...], dict[str, Any], Callable]] = {
    "Linear": (("in_features", "out_features"), {"bias": True}, _linear),
    "Conv2d": (("in_channels", "out_channels", "kernel_size"), {"stride": 1, "padding": 0, "bias": True}, _conv),
    "BatchNorm1d": (("num_features",), {"eps": 1e-5, "momentum": 0.1}, lambda o, t: _batch_norm(o, t, "BatchNorm1d")),
    "BatchNorm2d": (("num_features",), {"eps": 1e-5, "momentum": 0.1}, lambda o, t: _batch_norm(o, t, "BatchNorm2d")),
    "LayerNorm": (("normalized_shape",), {"eps": 1e-5}, _layer_norm),
    "GELU": ((), {"approximate": "none"}, _gelu),
    "MaxPool2d": (("kernel_size",), {}, lambda o, t: _pool(o, t, "MaxPool2d")),
    "AvgPool2d": (("kernel_size",), {}, lambda o, t: _pool(o, t, "AvgPool2d")),
    "Flatten": ((), {}, _flatten),
    "Dropout": ((), {"p": 0.5}, _dropout),
}


def is_layer(source: str) -> bool:
    return source.strip().lower().startswith(("torch.nn.", "nn."))


def translate_layer(source: str, options: Mapping[str, Any] | None = None) -> LayerTranslation:
    """The flax.nnx equivalent of ``torch.nn.<Layer>(**options)``, its naive port and what differs."""
    name = source.strip().split(".")[-1]
    match = {k.lower(): k for k in LAYERS}.get(name.lower())
    if match is None:
        raise XregInputError(f"--from {source}: xreg translates the layers {', '.join('torch.nn.' + k for k in LAYERS)}.")
    required, defaults, fill = LAYERS[match]
    o = _args(dict(options or {}), required, defaults, match)
    t = LayerTranslation(f"torch.nn.{match}", o, "", "", "")
    fill(o, t)
    return t
