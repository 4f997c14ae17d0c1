"""The layer conventions: where torch, flax and Keras layers compute different things by default, in ONE table.

Each row is one convention: the defaults of each framework, how they map, what a *naive* port writes
(torch's arguments copied literally into flax, flax's defaults kept), and the fix on each side. The
JAX backend runs a naive layer when its code is in the architecture's ``naive`` set; a row ``acts`` on
an architecture only where that naive layer computes something else there (``SAME`` padding equals
torch's ``padding=1`` for a 3x3 kernel at stride 1, so it does not act there). Framework-free: the code
each row prints is text.

Sources (the installed packages): ``torch.nn.BatchNorm1d/2d`` (momentum=0.1, eps=1e-5, unbiased
``running_var``), ``torch.nn.LayerNorm`` (eps=1e-5), ``torch.nn.GELU`` (approximate='none'),
``torch.nn.Conv2d`` (OIHW, symmetric ``padding``), ``torch.nn.Linear`` init (kaiming_uniform(a=sqrt(5)):
U(+-1/sqrt(fan_in)), bias U(+-1/sqrt(fan_in))); ``flax.nnx.BatchNorm`` (momentum=0.99 as the running
average's decay, epsilon=1e-5, use_fast_variance=True, biased ``var``, ``mean``/``var`` float32 whatever
``param_dtype``), ``flax.nnx.LayerNorm``
(epsilon=1e-6, use_fast_variance=True), ``flax.nnx.gelu`` (approximate=True), ``flax.nnx.Conv`` (HWIO,
NHWC), ``nnx.Linear``/``nnx.Conv`` init (lecun_normal kernel, zero bias); Keras 3
``BatchNormalization`` (momentum=0.99, epsilon=1e-3), ``LayerNormalization`` (epsilon=1e-3),
``activations.gelu`` (approximate=False), ``Dense``/``Conv2D`` init (glorot_uniform, zero bias).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class LayerConvention:
    code: str  # the cause's name, and the --naive-layer value
    layer: str
    torch: str
    flax: str
    keras: str
    maps: str  # how one framework's setting becomes the other's
    naive: str  # what the literal port writes in flax
    fix_flax: str  # the flax code that computes torch's arithmetic
    fix_torch: str  # the torch code that computes what the naive flax port computes
    acts: Callable  # acts(arch, dtype) -> bool: the naive layer changes this architecture's arithmetic
    rounding: bool = False  # the same rule rounded differently: not a mismatch by itself (measured: see its row)


def _bn(arch, dtype="float64") -> bool:
    return arch.norm == "batch"


def _ln(arch, dtype="float64") -> bool:
    return arch.norm == "layer"


def same_sizes(arch) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(flax's SAME map size, torch's) of the cnn's conv, or None without a conv. SAME pads to ceil(n/s)
    outputs (total max((out-1)*s + k - n, 0), the odd one at the end)."""
    c = arch.conv
    if c is None:
        return None
    return tuple(-(-n // c.stride) for n in c.image[1:]), c.out_hw  # type: ignore[return-value]


def _same_differs(arch, dtype="float64") -> bool:
    """torch's symmetric padding p computes SAME's map only where both give that size and that padding."""
    sizes = same_sizes(arch)
    if sizes is None:
        return False
    c = arch.conv
    for n, same_out, out in zip(c.image[1:], *sizes):
        total = max((same_out - 1) * c.stride + c.kernel - n, 0)
        if same_out != out or total != 2 * c.padding:
            return True
    return False


def blocked(code: str, arch) -> str | None:
    """Why the naive form of ``code`` cannot run on ``arch`` beside torch (None: it can): SAME padding that
    makes another map size leaves the head's torch weights without the shape they need."""
    sizes = same_sizes(arch)
    if code == "same-padding" and sizes is not None and sizes[0] != sizes[1]:
        (sh, sw), (th, tw) = sizes
        return (f"flax's padding='SAME' makes {sh}x{sw} maps where torch's padding={arch.conv.padding} makes {th}x{tw}: "
                "the dense head's torch weights do not fit, so this naive port cannot run beside torch")
    return None


def _flatten_differs(arch, dtype="float64") -> bool:
    return arch.conv is not None and arch.conv.channels > 1 and arch.conv.pooled_hw != (1, 1)


CONVENTIONS: dict[str, LayerConvention] = {
    c.code: c
    for c in [
        LayerConvention(
            "bn-momentum", "batch norm", "momentum=0.1 (the new batch's weight)", "momentum=0.99 (the running average's decay)",
            "momentum=0.99 (decay)", "flax/Keras momentum = 1 - torch momentum",
            "nnx.BatchNorm(momentum=m) with torch's m copied: flax keeps m of the running statistics and takes 1 - m of "
            "the batch's, the reverse of torch (the same only at m = 0.5)",
            "nnx.BatchNorm(momentum=1 - m, ...)", "nn.BatchNorm1d/2d(momentum=1 - m)", _bn),
        LayerConvention(
            "bn-running-var", "batch norm", "running_var moves towards the unbiased batch variance (n/(n-1))",
            "var moves towards the biased batch variance", "moving_variance: the biased batch variance",
            "torch's update = flax's with the batch variance times n/(n-1); normalization uses the biased one in all three",
            "nnx.BatchNorm: flax's biased running variance (eval mode then normalizes by a smaller variance)",
            "nnx.BatchNorm with the var update replaced by (1-m)*var_batch*n/(n-1) (xreg.backends.jax.nets.TorchBatchNorm)",
            "no torch option: rescale running_var by (n-1)/n after each step", _bn),
        LayerConvention(
            "bn-stats-float32", "batch norm", "running_mean/running_var in the module's dtype (float64 in a float64 model)",
            "mean/var created float32 whatever param_dtype is", "moving statistics in the layer's dtype",
            "a float64 flax port keeps its running statistics in float32: the eval-mode forward differs by ~1e-8",
            "nnx.BatchNorm(..., param_dtype=jnp.float64): its mean and var stay float32",
            "nnx.BatchNorm whose mean/var are nnx.BatchStat(jnp.zeros(C, jnp.float64)) (TorchBatchNorm makes them so)",
            "running statistics kept in float32: bn.running_mean.float() after each step",
            lambda a, dtype="float64": a.norm == "batch" and dtype == "float64"),
        LayerConvention(
            "fast-variance", "batch and layer norm", "two-pass variance mean((x - mean)^2)",
            "use_fast_variance=True: mean(x^2) - mean(x)^2 (one pass)", "two-pass",
            "the same variance, rounded differently: it loses digits where |mean| >> std (measured: 1.8e-15 on digits in "
            "float64, within round-off; where |mean| >> std the exact port parts from torch by round-off too)",
            "nnx.BatchNorm / nnx.LayerNorm with flax's default use_fast_variance=True",
            "use_fast_variance=False", "no torch option (torch always computes the two-pass form)",
            lambda a, dtype="float64": False, rounding=True),
        LayerConvention(
            "ln-eps", "layer norm", "eps=1e-5", "epsilon=1e-6", "epsilon=1e-3",
            "the number added to the variance under the square root: copy it",
            "nnx.LayerNorm(...): flax's epsilon=1e-6 kept", "nnx.LayerNorm(..., epsilon=1e-5)", "nn.LayerNorm(..., eps=1e-6)", _ln),
        LayerConvention(
            "bn-eps", "batch norm", "eps=1e-5", "epsilon=1e-5", "epsilon=1e-3",
            "torch and flax agree; Keras's 1e-3 is a hundred times larger", "nnx.BatchNorm(...): flax's epsilon=1e-5 (torch's)",
            "nnx.BatchNorm(..., epsilon=1e-5)", "nn.BatchNorm1d(..., eps=1e-5)", lambda a, dtype="float64": False),
        LayerConvention(
            "gelu-form", "GELU", "nn.GELU(): exact, 0.5*x*(1 + erf(x/sqrt(2)))", "nnx.gelu(x): approximate=True (tanh form)",
            "activations.gelu(x): approximate=False (exact)", "torch approximate='tanh' = flax approximate=True",
            "nnx.gelu(x) for torch's nn.GELU(): flax's default tanh approximation",
            "nnx.gelu(x, approximate=False)", "nn.GELU(approximate='tanh')", lambda a, dtype="float64": a.activation == "gelu"),
        LayerConvention(
            "same-padding", "conv2d", "padding=p: p zeros on every side", "padding='SAME': ceil(n/s) outputs, the odd pad at the end",
            "padding='same' (stride 1 only)", "torch padding=p = flax padding=((p, p), (p, p)); SAME equals it only for odd "
            "kernels at stride 1 with p = (k-1)/2", "nnx.Conv(..., padding='SAME') for torch's padding=p",
            "nnx.Conv(..., padding=((p, p), (p, p)))", "F.pad(x, (0, 1, 0, 1)) then nn.Conv2d(padding=0) (SAME's asymmetric pad)",
            _same_differs),
        LayerConvention(
            "kernel-layout", "conv2d", "weight (out, in, kh, kw): OIHW", "kernel (kh, kw, in, out): HWIO", "kernel (kh, kw, in, out)",
            "flax kernel = torch weight.transpose(2, 3, 1, 0) (a dense kernel = weight.T)",
            "torch's weight reshaped to HWIO (weight.reshape(kh, kw, in, out)) instead of transposed",
            "kernel = weight.transpose(2, 3, 1, 0)", "weight = kernel.transpose(3, 2, 0, 1)", lambda a, dtype="float64": a.conv is not None),
        LayerConvention(
            "flatten-order", "flatten", "x.flatten(1) of NCHW: channel, row, column", "x.reshape(n, -1) of NHWC: row, column, channel",
            "Flatten of NHWC (channels_last)", "the dense head's weight columns permuted: transpose NHWC -> NCHW before flattening",
            "x.reshape(n, -1) on flax's NHWC map, with the head's weights taken from torch",
            "x.transpose(0, 3, 1, 2).reshape(n, -1)", "x.permute(0, 2, 3, 1).flatten(1)", _flatten_differs),
        LayerConvention(
            "init", "init", "kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in))",
            "lecun_normal: truncated N(0, 1/fan_in); bias 0", "glorot_uniform: U(+-sqrt(6/(fan_in+fan_out))); bias 0",
            "a different start, not a different rule: --init torch|flax|keras draws each family (in NumPy, from --seed)",
            "flax's default init kept: the port starts elsewhere (--init flax)", "load torch's initial weights into flax",
            "nn.init.trunc_normal_ / zeros_ (lecun_normal: std sqrt(1/fan_in)/0.8796)", lambda a, dtype="float64": True),
    ]
}  # fmt: skip
CODES = tuple(CONVENTIONS)
DEFAULT_NAIVE_EXCLUDED = ("init",)  # a naive port keeps the shared start unless asked: another start hides every other cause


FIX_IMPORTS = "import functools\nimport jax.numpy as jnp\nfrom flax import nnx\nfrom xreg.backends.jax.nets import TorchBatchNorm"


def _widths(arch) -> tuple[int, ...]:
    return (arch.conv.channels,) if arch.conv is not None else tuple(arch.hidden or ())


def _one_or_list(calls: list[str]) -> str:
    """One layer's call, or the list of them (one per hidden block, input first)."""
    return calls[0] if len(calls) == 1 else "[" + ", ".join(calls) + "]"


def fix_code(code: str, arch, dtype: str = "float64") -> str:
    """The flax expression that computes torch's arithmetic where the naive port of ``code`` does not, for
    ``arch`` (each of its layers of that kind; Python that runs after :data:`FIX_IMPORTS`): a module for a
    norm or a conv, a function for an activation, a flatten or a kernel conversion."""
    common = f"param_dtype=jnp.{dtype}, rngs=nnx.Rngs(0)"
    if code in ("bn-momentum", "bn-running-var", "bn-stats-float32", "fast-variance", "bn-eps") and arch.norm == "batch":
        return _one_or_list([f"TorchBatchNorm({w}, momentum=0.9, epsilon=1e-05, use_fast_variance=False, {common})" for w in _widths(arch)])
    if code in ("ln-eps", "fast-variance") and arch.norm == "layer":
        c = arch.conv
        widths = (c.channels * c.out_hw[0] * c.out_hw[1],) if c is not None else _widths(arch)
        return _one_or_list([f"nnx.LayerNorm({w}, epsilon=1e-05, use_fast_variance=False, {common})" for w in widths])
    if code == "gelu-form":
        return "functools.partial(nnx.gelu, approximate=False)"
    if code == "same-padding":
        c = arch.conv
        return (f"nnx.Conv({c.image[0]}, {c.channels}, ({c.kernel}, {c.kernel}), strides=({c.stride}, {c.stride}), "
                f"padding=(({c.padding}, {c.padding}), ({c.padding}, {c.padding})), use_bias={arch.has_bias('conv.')}, {common})")
    if code == "kernel-layout":
        return "lambda weight: weight.transpose(2, 3, 1, 0)"
    if code == "flatten-order":
        return "lambda x: x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)"
    # init: torch's kaiming_uniform(a=sqrt(5)) kernel family, U(+-1/sqrt(fan_in)) (flax has no bias initializer that
    # reads fan_in: load torch's initial biases, or start both from one drawn start as xreg does)
    return "nnx.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')"


def acting(arch, dtype: str = "float64") -> tuple[str, ...]:
    """The naive layer conventions that change ``arch``'s arithmetic in ``dtype`` and can run beside torch,
    in table order (``init`` aside)."""
    return tuple(c.code for c in CONVENTIONS.values()
                 if c.acts(arch, dtype) and c.code not in DEFAULT_NAIVE_EXCLUDED and blocked(c.code, arch) is None)  # fmt: skip


def cause_text(code: str, arch=None, dtype: str = "float64") -> str:
    """The naive layer and its flax fix (the runnable expression of :func:`fix_code` where ``arch`` is known)."""
    c = CONVENTIONS[code]
    return f"{c.naive} (fix: {fix_code(code, arch, dtype) if arch is not None else c.fix_flax}; torch side: {c.fix_torch})"


def table_text() -> str:
    """Every row, as ``xreg explain layers`` prints it."""
    lines = ["layer conventions: torch / flax / Keras 3 defaults, how they map, and the naive flax port (torch's arguments "
             "copied, flax's defaults kept); --naive-layer CODE runs one"]
    for c in CONVENTIONS.values():
        lines += [f"{c.code} ({c.layer})" + (" [rounding only]" if c.rounding else ""),
                  f"  torch   {c.torch}", f"  flax    {c.flax}", f"  keras   {c.keras}", f"  maps    {c.maps}",
                  f"  naive   {c.naive}", f"  fix     flax: {c.fix_flax}; torch: {c.fix_torch}"]
    return "\n".join(lines)
