"""The models, each stated once: parameter names and shapes (torch's), forward, loss and accuracy.

A model is a stack of dense layers ``z <- z @ W.T + b`` (torch ``nn.Linear``), with an activation
between layers, and a *head* that turns the last layer's output ``z`` (m, K) into a mean loss:

=============  ==========================================  ===============================================
model          parameters (torch names and shapes)         loss (mean over the batch's m rows)
=============  ==========================================  ===============================================
``linear``     ``weight`` (1, d), ``bias`` (1,)            MSE ``(z - y)^2``
``logistic``   ``weight`` (1, d), ``bias`` (1,)            BCE on logits ``log(1 + e^z) - y*z``, y in {0, 1}
``softmax``    ``weight`` (K, d), ``bias`` (K,)            cross-entropy ``logsumexp(z) - z_y``, y in 0..K-1
``mlp``        ``hidden.weight`` (H, d), ``hidden.bias``   hidden blocks, then the logistic head (K = 1)
               (H,), ``out.weight`` (K, H), ``out.bias``   for two classes, the softmax head for more
               (K,)
=============  ==========================================  ===============================================

The MLP's hidden blocks (``hidden=(H1, H2, ...)``, any depth) are each ``dense -> norm -> activation ->
dropout``, as a torch user writes them: ``nn.Linear``; then ``nn.BatchNorm1d`` (train mode: normalized
by the batch's biased variance, ``running_mean``/``running_var`` moved by ``momentum`` 0.1 towards the
batch mean and the *unbiased* variance, ``num_batches_tracked`` counted; eval mode: normalized by the
running statistics) or ``nn.LayerNorm`` (each row by its own mean and biased variance), both with eps
1e-5 and an affine ``weight`` (ones) and ``bias`` (zeros), or no norm; then ``tanh``, ``relu``, ``gelu``
(exact, ``0.5*x*(1 + erf(x/sqrt(2)))``, torch's default) or ``gelu-tanh`` (``approximate='tanh'``, flax's
default); then dropout, ``x * keep / (1 - p)`` with the keep mask of each step drawn once in NumPy
(:mod:`xreg.core.plan`) and fed to every backend. A dense layer before a batch norm has no bias
(``nn.Linear(bias=False)``: the norm's mean cancels it). One hidden block is named ``hidden.``/``norm.``;
deeper stacks ``hidden1.``, ``norm1.``, ``hidden2.``, ...

Everything here is framework-free math written against an array namespace ``xp`` (``numpy`` or
``jax.numpy``): the JAX and NumPy backends both use :func:`backward`, the forward pass differentiated by
hand (XLA compiles its few matrix products better than autodiff's graph; the JAX backend holds it to
``jax.grad`` of :func:`forward`, tested); the torch backend builds the same layers from ``torch.nn.Linear``
and torch's own loss classes, differentiated by autograd.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from xreg.core.checks import XregInputError, check_choice, check_int
from xreg.models import conv
from xreg.models.conv import POOLS, Conv

ACTIVATIONS = ("tanh", "relu", "gelu", "gelu-tanh")
NORMS = ("none", "batch", "layer")
DEFAULT_HIDDEN = 16
MAX_WIDTH = 100_000
MAX_DEPTH = 64  # hidden layers: each is traced, compiled and recorded apart
# torch's defaults, the arithmetic every backend reproduces: nn.BatchNorm1d(momentum=0.1, eps=1e-5), nn.LayerNorm(eps=1e-5)
BATCH_NORM_MOMENTUM = 0.1
NORM_EPS = 1e-5


@dataclass(frozen=True)
class Head:
    name: str
    loss_formula: str
    classification: bool
    torch_loss: str  # the torch.nn loss class that realizes it


HEADS = {
    h.name: h
    for h in [
        Head("mse", "mean((z - y)^2)", False, "MSELoss"),
        Head("bce", "mean(log(1 + exp(z)) - y*z)", True, "BCEWithLogitsLoss"),
        Head("ce", "mean(logsumexp(z) - z[y])", True, "CrossEntropyLoss"),
    ]
}


REDUCTIONS = ("mean", "sum")
ROW_WEIGHTED, SMOOTH_K_MINUS_1 = "class-weight-mean", "smoothing-k-minus-1"  # the naive loss forms (xreg.semantics.losses)


@dataclass(frozen=True)
class Loss:
    """How the rows' losses become the batch's (torch's ``reduction``, CrossEntropyLoss's ``weight`` and
    ``label_smoothing``), and the naive forms a JAX port computes instead (``naive``)."""

    reduction: str = "mean"
    class_weight: tuple[float, ...] | None = None  # one per class (the ce head)
    label_smoothing: float = 0.0
    naive: tuple[str, ...] = ()

    @property
    def plain(self) -> bool:
        return self == Loss()


@dataclass(frozen=True)
class Model:
    """One row of the model table: how many outputs it has for K classes, and its head."""

    name: str
    hidden: bool  # hidden dense layers (``hidden``)
    summary: str
    default_init: str
    layers: bool = False  # norms, activations and dropout (the mlp and the cnn)

    def head(self, n_classes: int) -> str:
        if self.name == "linear":
            return "mse"
        if self.name == "logistic" or (self.layers and n_classes == 2):
            return "bce"
        return "ce"

    @property
    def convex(self) -> bool:
        return not self.layers


MODELS: dict[str, Model] = {
    m.name: m
    for m in [
        Model("logistic", False, "binary logistic regression", "zeros"),
        Model("linear", False, "least squares", "zeros"),
        Model("softmax", False, "K-class softmax regression", "zeros"),
        Model("mlp", True, "hidden layers (any depth), logistic or softmax head", "torch", layers=True),
        Model("cnn", False, "conv -> norm -> activation -> pooling on image rows, then a dense head", "torch", layers=True),
    ]
}


def get(name: str) -> Model:
    return MODELS[check_choice("model", name, MODELS)]


@dataclass(frozen=True)
class Architecture:
    """A model with its shapes fixed: hashable, part of a run's structure."""

    model: str
    n_features: int
    n_outputs: int
    head: str
    hidden: tuple[int, ...] | None = None  # the MLP's hidden widths, input side first
    activation: str | None = None
    norm: str = "none"  # the hidden blocks' norm: 'none', 'batch' or 'layer'
    dropout: float = 0.0  # the hidden blocks' dropout probability
    conv: Conv | None = None  # the cnn's convolution and pooling
    naive: tuple[str, ...] = ()  # the naive layer conventions the run computes (:mod:`xreg.semantics.layers`; JAX only)
    loss: Loss = Loss()  # the reduction, class weights and label smoothing of the head's loss

    @functools.cached_property
    def blocks(self) -> tuple[tuple[str, str], ...]:
        """(dense or conv prefix, norm prefix) of each hidden block, input first."""
        if self.conv is not None:
            return (("conv.", "norm."),)
        if not self.hidden:
            return ()
        if len(self.hidden) == 1:
            return (("hidden.", "norm."),)
        return tuple((f"hidden{i}.", f"norm{i}.") for i in range(1, len(self.hidden) + 1))

    @functools.cached_property
    def layers(self) -> tuple[tuple[str, int, int], ...]:
        """(name prefix, fan_in, fan_out) of each dense layer, input first."""
        if self.conv is not None:
            return (("out.", self.conv.features, self.n_outputs),)
        if not self.hidden:
            return (("", self.n_features, self.n_outputs),)
        fans = (self.n_features, *self.hidden, self.n_outputs)
        prefixes = [d for d, _ in self.blocks] + ["out."]
        return tuple((p, fans[i], fans[i + 1]) for i, p in enumerate(prefixes))

    @functools.cached_property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape, in torch's ``named_parameters()`` order."""
        out: dict[str, tuple[int, ...]] = {}
        norms = dict(self.blocks)
        if self.conv is not None:
            c = self.conv
            out["conv.weight"] = (c.channels, c.image[0], c.kernel, c.kernel)  # OIHW
            if self.has_bias("conv."):
                out["conv.bias"] = (c.channels,)
            if self.norm != "none":  # BatchNorm2d per channel; LayerNorm([C, H', W']) per element of the map
                affine = (c.channels,) if self.norm == "batch" else (c.channels, *c.out_hw)
                out.update({"norm.weight": affine, "norm.bias": affine})
        for prefix, fan_in, fan_out in self.layers:
            out[prefix + "weight"] = (fan_out, fan_in)
            if self.has_bias(prefix):
                out[prefix + "bias"] = (fan_out,)
            if prefix in norms and self.norm != "none":
                out[norms[prefix] + "weight"] = (fan_out,)
                out[norms[prefix] + "bias"] = (fan_out,)
        return out

    def has_bias(self, prefix: str) -> bool:
        """Whether the dense layer ``prefix`` has a bias: not before a batch norm, whose mean subtraction
        cancels it (its gradient is zero but for round-off, which Adam-like optimizers turn into full-size
        steps of random sign), as torch models write ``nn.Linear(..., bias=False)`` there."""
        return not (self.norm == "batch" and prefix in dict(self.blocks))

    @functools.cached_property
    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Buffer name -> shape, in torch's ``named_buffers()`` order: batch norm's running statistics and
        its step count (a float here, as every recorded array)."""
        if self.norm != "batch":
            return {}
        out: dict[str, tuple[int, ...]] = {}
        for (_, norm), width in zip(self.blocks, self.hidden or (self.conv.channels,)):
            out.update({norm + "running_mean": (width,), norm + "running_var": (width,), norm + "num_batches_tracked": ()})
        return out

    @functools.cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(self.shapes)

    @functools.cached_property
    def dense_names(self) -> tuple[str, ...]:
        """The dense layers' weights and biases (what an init family draws)."""
        return tuple(p + k for p, _, _ in self.init_layers for k in ("weight", "bias") if p + k in self.shapes)

    @functools.cached_property
    def init_layers(self) -> tuple[tuple[str, int, int], ...]:
        """(prefix, fan_in, fan_out) of each conv or dense layer, input first: what an init family draws, in
        order (a conv's fans count its receptive field: C_in*k*k and C_out*k*k)."""
        c = self.conv
        conv = (("conv.", c.fan_in, c.channels * c.kernel * c.kernel),) if c is not None else ()
        return conv + self.layers

    @property
    def dropout_widths(self) -> tuple[int, ...]:
        """Units each dropout multiplies, per block: the hidden widths, or the cnn's pooled features."""
        return (self.conv.features,) if self.conv is not None else tuple(self.hidden or ())

    @property
    def size(self) -> int:
        return sum(math.prod(s) for s in self.shapes.values())

    @property
    def values_per_row(self) -> int:
        """Numbers one row's forward and backward pass hold at once (the cnn: its patches, each map's
        pre-activation, normalized, activated values and gradient; dense layers: every width)."""
        dense = self.n_features + sum(self.hidden or ()) * 6 + self.n_outputs * 3
        if self.conv is None:
            return dense
        c = self.conv
        area = c.out_hw[0] * c.out_hw[1]
        return c.image[0] * c.kernel * c.kernel * area + 6 * c.channels * area + 2 * c.features + dense

    @property
    def layered(self) -> bool:
        """Anything but dense layers with tanh or relu between them: a norm, dropout or GELU (the JAX
        backend realizes these with flax.nnx modules; plain dense stacks with the hand-written backward)."""
        return self.conv is not None or self.norm != "none" or self.dropout > 0 or self.activation in ("gelu", "gelu-tanh")

    def describe(self) -> str:
        shapes = ", ".join(f"{n} {tuple(s)}" for n, s in self.shapes.items())
        return shapes if self.conv is None else f"{self.conv.describe()}; {shapes}"


def initial_buffers(arch: Architecture) -> dict[str, Any]:
    """torch's start: running mean 0, running variance 1, no batches tracked."""
    import numpy as np

    return {n: np.ones(s) if n.endswith("running_var") else np.zeros(s) for n, s in arch.buffer_shapes.items()}


def hidden_widths(value) -> tuple[int, ...]:
    """``--hidden``: one width or several (``32,16``, a list), each a whole number >= 1."""
    if isinstance(value, str):
        parts = [v.strip() for v in value.split(",")]
        if not parts or any(not (p.isascii() and p.isdigit()) for p in parts):  # no sign, no '1.5', no empty part, ASCII digits only
            raise XregInputError(f"The 'hidden' parameter must be widths like 32 or 32,16 (whole numbers >= 1). Got {value!r} instead.")
        value = [int(p) for p in parts]
    widths = (value,) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(widths, (tuple, list)) or not widths:
        raise XregInputError(f"The 'hidden' parameter must be a width or a list of widths. Got {value!r} instead.")
    if len(widths) > MAX_DEPTH:
        raise XregInputError(f"The 'hidden' parameter names {len(widths)} hidden layers; xreg runs at most {MAX_DEPTH}.")
    return tuple(check_int("hidden", w, 1, MAX_WIDTH) for w in widths)


DEFAULT_CONV = {"channels": 8, "kernel_size": 3, "stride": 1, "padding": 1, "pool": "max", "pool_size": 2}
CONV_OPTIONS = tuple(DEFAULT_CONV)


def make_conv(image: tuple[int, int, int] | None, n_features: int, options: dict[str, Any]) -> Conv:
    """The cnn's conv and pooling from ``options`` (``DEFAULT_CONV``'s names), checked against the image."""
    if image is None:
        raise XregInputError("The cnn model reads each row as an image, and these rows have no image shape "
                             "(a shipped image dataset has one: --data digits, 1 x 8 x 8).")  # fmt: skip
    if math.prod(image) != n_features:
        raise XregInputError(f"The image shape {'x'.join(map(str, image))} does not hold the {n_features} features of a row.")
    o = {**DEFAULT_CONV, **{k: v for k, v in options.items() if v is not None}}
    conv = Conv(tuple(image), check_int("channels", o["channels"], 1, 4096), check_int("kernel_size", o["kernel_size"], 1, 64),
                check_int("stride", o["stride"], 1, 64), check_int("padding", o["padding"], 0, 64),
                check_choice("pool", o["pool"], POOLS), check_int("pool_size", o["pool_size"], 1, 64))  # fmt: skip
    h, w = image[1:]
    if min(conv.out_hw) < 1:
        raise XregInputError(f"A {conv.kernel}x{conv.kernel} kernel with padding {conv.padding} does not fit the {h}x{w} "
                             "image: use a smaller --kernel-size or more --padding.")  # fmt: skip
    if min(conv.pooled_hw) < 1:
        oh, ow = conv.out_hw
        raise XregInputError(f"A {conv.pool_size}x{conv.pool_size} pooling does not fit the {oh}x{ow} map the conv makes "
                             f"of the {h}x{w} image: use a --pool-size of at most {min(oh, ow)}.")  # fmt: skip
    return conv


def architecture(model: str, n_features: int, n_classes: int, hidden=None, activation: str | None = None,
                 norm: str | None = None, dropout: float = 0.0, conv: dict[str, Any] | None = None,
                 image: tuple[int, int, int] | None = None) -> Architecture:  # fmt: skip
    """The architecture of ``model`` for ``n_features`` inputs and ``n_classes`` classes (1 for regression);
    the cnn's ``conv`` options (``DEFAULT_CONV``) read rows as images of shape ``image``."""
    row = get(model)
    head = row.head(n_classes)
    n_out = n_classes if head == "ce" else 1
    if not row.layers:
        return Architecture(model, n_features, n_out, head)
    activation = check_choice("activation", "tanh" if activation is None else activation, ACTIVATIONS)
    norm = check_choice("norm", "none" if norm is None else norm, NORMS)
    if model == "cnn":
        return Architecture(model, n_features, n_out, head, None, activation, norm, float(dropout), make_conv(image, n_features, conv or {}))
    hidden = hidden_widths(DEFAULT_HIDDEN if hidden is None else hidden)
    return Architecture(model, n_features, n_out, head, hidden, activation, norm, float(dropout))


# ---- the math, once, in an array namespace xp ------------------------------------------------------
_GELU_C = math.sqrt(2.0 / math.pi)


def _erf(xp):
    if xp.__name__ == "numpy":
        from scipy.special import erf

        return erf
    from jax.scipy.special import erf  # only where the caller already runs JAX

    return erf


def activate(name: str, z, xp):
    if name == "tanh":
        return xp.tanh(z)
    if name == "relu":
        return xp.maximum(z, 0.0)
    if name == "gelu":
        return 0.5 * z * (1.0 + _erf(xp)(z / math.sqrt(2.0)))
    return 0.5 * z * (1.0 + xp.tanh(_GELU_C * (z + 0.044715 * z**3)))


def activation_derivative(name: str, z, a, xp):
    """d act(z)/dz from the pre-activation z and the activation a = act(z)."""
    if name == "tanh":
        return 1 - a * a
    if name == "relu":
        return (z > 0).astype(z.dtype)
    if name == "gelu":  # Phi(z) + z*phi(z)
        return 0.5 * (1.0 + _erf(xp)(z / math.sqrt(2.0))) + z * xp.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    t = xp.tanh(_GELU_C * (z + 0.044715 * z**3))
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _GELU_C * (1.0 + 3 * 0.044715 * z * z)


def _norm_axes(kind: str, ndim: int) -> tuple[int, ...]:
    """The axes a norm averages over: batch norm every axis but the channel (1), layer norm every axis but the rows."""
    return (0, *range(2, ndim)) if kind == "batch" else tuple(range(1, ndim))


def _per_channel(v, u):
    """A per-channel vector (C,) shaped to broadcast against u (N, C, ...)."""
    return v.reshape((1, -1) + (1,) * (u.ndim - 2))


def _normalize(kind: str, u, w, b, buffers, prefix, xp, train: bool):
    """Batch or layer norm of u (N, C) or (N, C, H, W): (normalized, affine output, 1/std, new buffers)."""
    axes = _norm_axes(kind, u.ndim)
    if kind == "batch":
        w, b = _per_channel(w, u), _per_channel(b, u)
    if kind == "batch" and not train:
        mean, var = _per_channel(buffers[prefix + "running_mean"], u), _per_channel(buffers[prefix + "running_var"], u)
    else:
        mean = xp.mean(u, axis=axes, keepdims=True)
        var = xp.mean((u - mean) ** 2, axis=axes, keepdims=True)  # biased: what normalizes, in both norms
    inv = 1.0 / xp.sqrt(var + NORM_EPS)
    xhat = (u - mean) * inv
    new = {}
    if kind == "batch" and train and buffers is not None:  # torch: the running variance moves towards the *unbiased* batch variance
        n, mom = math.prod(u.shape[a] for a in axes), BATCH_NORM_MOMENTUM
        new = {prefix + "running_mean": (1 - mom) * buffers[prefix + "running_mean"] + mom * mean.reshape(-1),
               prefix + "running_var": (1 - mom) * buffers[prefix + "running_var"] + mom * var.reshape(-1) * (n / (n - 1)),
               prefix + "num_batches_tracked": buffers[prefix + "num_batches_tracked"] + 1}  # fmt: skip
    return xhat, xhat * w + b, inv, new


def _block(arch: Architecture, params, z, prefix: str, xp, buffers, train: bool):
    """The norm and activation of one block's pre-activation z: (activation, what the backward pass reads, moved buffers)."""
    block: dict[str, Any] = {}
    u, moved = z, {}
    if arch.norm != "none":
        block["xhat"], u, block["inv"], moved = _normalize(arch.norm, z, params[prefix + "weight"], params[prefix + "bias"],
                                                           buffers, prefix, xp, train)  # fmt: skip
    a = activate(arch.activation, u, xp)
    block["u"], block["a"] = u, a
    return a, block, moved


def _cnn_forward(arch: Architecture, params, X, xp, buffers, drop, train):
    """conv -> norm -> activation -> pool -> flatten (C-major) -> dropout: the head's input and the kept values."""
    c = arch.conv
    x = X.reshape((X.shape[0], *c.image))
    P = conv.patches(x, c, xp)
    z = conv.conv_forward(P, params["conv.weight"], xp)
    if arch.has_bias("conv."):
        z = z + _per_channel(params["conv.bias"], z)
    a, block, moved = _block(arch, params, z, "norm.", xp, buffers, train)
    pooled, block["choice"] = conv.pool_forward(a, c, xp)
    block["P"], block["shape"] = P, a.shape
    h = pooled.reshape(X.shape[0], c.features)
    if drop is not None and arch.dropout > 0:
        block["drop"] = drop[0]
        h = h * drop[0]
    return h, block, moved


def forward(arch: Architecture, params: dict[str, Any], X, xp, keep: bool = False, *, buffers=None, drop=None,
            train: bool = True):  # fmt: skip
    """Logits (m, K) of the rows of X; with ``keep`` also ``(kept, new_buffers)``: per dense layer its input
    and output, and per hidden block what the backward pass reads. ``buffers``: batch norm's running
    statistics (eval mode normalizes by them; train mode returns them moved); ``drop``: per hidden block the
    dropout multiplier ``keep/(1-p)`` of each row (m, H), or None (eval mode: no dropout)."""
    h, kept, new = X, [], {}
    if arch.conv is not None:
        h, cblock, new = _cnn_forward(arch, params, X, xp, buffers, drop, train)
        new = dict(new)
    norms = dict(arch.blocks)
    for i, (prefix, _, _) in enumerate(arch.layers):
        z = h @ params[prefix + "weight"].T
        if arch.has_bias(prefix):
            z = z + params[prefix + "bias"]
        if i == len(arch.layers) - 1:
            kept.append((h, z, None))
            h = z
            break
        a, block, moved = _block(arch, params, z, norms[prefix], xp, buffers, train)
        new.update(moved)
        if drop is not None and arch.dropout > 0:
            block["drop"] = drop[i]
            a = a * drop[i]
        kept.append((h, z, block))
        h = a
    if arch.conv is not None:
        kept.insert(0, (X, None, cblock))
    return (h, (kept, new)) if keep else h


def per_example_loss(head: str, z, y, xp, loss: Loss = Loss()):
    """Loss of each row from its logits z (m, K) and target y (m,): the batch's loss is their sum over
    :func:`loss_normalizer`. The ce head with ``loss``'s class weights w and label smoothing eps is torch's
    CrossEntropyLoss: ``(1-eps)*w[y]*(-logp[y]) + eps/K*sum_k w[k]*(-logp[k])`` (each class's smoothing term
    carries its own weight); the naive forms weight the whole row by ``w[y]`` (optax's ``loss * w[y]``) and
    spread eps over the K-1 other classes (``smoothing-k-minus-1``)."""
    if head == "mse":
        return (z[:, 0] - y) ** 2
    if head == "bce":
        return xp.logaddexp(0.0, z[:, 0]) - y * z[:, 0]
    zmax = xp.max(z, axis=1, keepdims=True)
    lse = zmax[:, 0] + xp.log(xp.sum(xp.exp(z - zmax), axis=1))
    labels = y.astype(int)
    nll = lse - xp.take_along_axis(z, labels[:, None], axis=1)[:, 0]
    if loss.plain:
        return nll
    K, eps = z.shape[1], loss.label_smoothing
    w = xp.ones(K, z.dtype) if loss.class_weight is None else xp.asarray(loss.class_weight, z.dtype)
    wy = w[labels]
    every = K * lse - xp.sum(z, axis=1)  # sum_k -logp[k]
    if SMOOTH_K_MINUS_1 in loss.naive:
        return wy * ((1 - eps) * nll + eps / (K - 1) * (every - nll))
    if ROW_WEIGHTED in loss.naive:
        return wy * ((1 - eps) * nll + eps / K * every)
    weighted = xp.sum(w[None, :] * (lse[:, None] - z), axis=1)  # sum_k w[k]*(-logp[k])
    return (1 - eps) * wy * nll + eps / K * weighted


def loss_gradient(head: str, z, y, xp, loss: Loss = Loss()):
    """d loss_i / d z for each row (m, K): the residual each head sends back (of :func:`per_example_loss`)."""
    if head == "mse":
        return 2 * (z - y[:, None])
    if head == "bce":
        return 0.5 * (1 + xp.tanh(0.5 * z)) - y[:, None]  # sigmoid(z) - y, overflow-free
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    p = e / xp.sum(e, axis=1, keepdims=True)
    onehot = (xp.arange(z.shape[1])[None, :] == y.astype(int)[:, None]).astype(z.dtype)
    if loss.plain:
        return p - onehot
    K, eps = z.shape[1], loss.label_smoothing
    w = xp.ones(K, z.dtype) if loss.class_weight is None else xp.asarray(loss.class_weight, z.dtype)
    wy = w[y.astype(int)][:, None]
    if SMOOTH_K_MINUS_1 in loss.naive:  # the target (1-eps) on y, eps/(K-1) on each other class
        return wy * (p - (1 - eps) * onehot - eps / (K - 1) * (1 - onehot))
    if ROW_WEIGHTED in loss.naive:
        return wy * (p - (1 - eps) * onehot - eps / K)
    return (1 - eps) * wy * (p - onehot) + eps / K * (p * xp.sum(w) - w[None, :])


def loss_normalizer(loss: Loss, y, m, xp, valid=None):
    """What the rows' summed loss is divided by: 1 for reduction 'sum'; for 'mean' the rows ``m``, or with
    class weights torch's sum of the rows' weights w[y] (the naive row-weighted mean divides by m)."""
    if loss.reduction == "sum":
        return 1.0
    if loss.class_weight is None or ROW_WEIGHTED in loss.naive:
        return m
    wy = xp.asarray(loss.class_weight, y.dtype)[y.astype(int)]  # in the run's dtype (y holds the labels in it)
    return xp.sum(wy if valid is None else xp.where(valid, wy, 0.0))


def correct(head: str, z, y, xp):
    """1 where the prediction is right (bce: z > 0 <=> y == 1; ce: argmax z == y)."""
    if head == "bce":
        return (z[:, 0] > 0) == (y == 1)
    return xp.argmax(z, axis=1) == y.astype(int)


def backward(arch: Architecture, params: dict[str, Any], X, y, xp, valid=None, m=None, per_example=None,
             rows_first: bool = False, *, buffers=None, drop=None, with_buffers: bool = False):  # fmt: skip
    """Mean loss over the rows of X and its gradient by parameter name: backpropagation by hand.

    ``valid`` (bool per row) leaves padding rows out of both, and ``m`` is then the number of real rows
    (dense stacks only: a batch norm's statistics would count the padding); ``per_example(z, y)`` replaces
    :func:`per_example_loss` for the recorded loss (not the gradient).
    ``rows_first``: a one-output layer's weight gradient as ``sum_i delta_i * x_i`` (one pass over the
    rows: XLA reads a tall X at twice the speed of its matrix-vector product); otherwise ``X^T delta``,
    the form XLA batches into one matrix product under ``vmap``. The same sum, rounded differently.
    ``buffers``/``drop`` as for :func:`forward` (train mode); ``with_buffers`` also returns the moved buffers.
    """
    if valid is not None and arch.layered:
        raise ValueError("backward: padded batches are for dense stacks; a norm's statistics would count the padding")
    m = X.shape[0] if m is None else m
    z, (kept, moved) = forward(arch, params, X, xp, keep=True, buffers=buffers, drop=drop)
    per = (per_example or (lambda z_, y_: per_example_loss(arch.head, z_, y_, xp, arch.loss)))(z, y)
    norm = loss_normalizer(arch.loss, y, m, xp, valid)
    delta = loss_gradient(arch.head, z, y, xp, arch.loss) / norm
    if valid is not None:
        per, delta = xp.where(valid, per, 0.0), xp.where(valid[:, None], delta, 0.0)
    loss = xp.sum(per) / norm
    grads = {}
    norms = dict(arch.blocks)
    cnn = arch.conv is not None
    for i in range(len(arch.layers) - 1, -1, -1):
        prefix = arch.layers[i][0]
        inp = kept[i + cnn][0]
        if rows_first and delta.shape[1] == 1:
            grads[prefix + "weight"] = xp.sum(inp * delta, axis=0)[None, :]
        else:
            grads[prefix + "weight"] = (inp.T @ delta).T  # not delta.T @ inp: XLA batches this form 5x faster under vmap
        if arch.has_bias(prefix):
            grads[prefix + "bias"] = xp.ones(delta.shape[0], delta.dtype) @ delta  # a product, as the weight's
        if not i and not cnn:
            break
        below, block = (arch.layers[i - 1][0], kept[i - 1][2]) if i else ("conv.", kept[0][2])
        d = delta @ params[prefix + "weight"]
        if "drop" in block:
            d = d * block["drop"]
        if not i:  # the cnn's pooling, then its conv block: the last step of the backward pass
            d = conv.pool_backward(d.reshape((d.shape[0], arch.conv.channels, *arch.conv.pooled_hw)), block["choice"],
                                   block["shape"], arch.conv, xp)  # fmt: skip
        delta = d * activation_derivative(arch.activation, block["u"], block["a"], xp)
        if arch.norm != "none":
            delta = _norm_backward(arch.norm, delta, block, params, norms[below], grads, xp)
        if not i:
            grads["conv.weight"] = conv.conv_weight_grad(block["P"], delta, xp)
            if arch.has_bias("conv."):
                grads["conv.bias"] = xp.sum(delta, axis=(0, 2, 3))
            break
    out = (loss, {n: grads[n] for n in arch.names})
    return (*out, moved) if with_buffers else out


def _norm_backward(kind: str, du, block, params, prefix: str, grads: dict, xp):
    """The gradient of a batch or layer norm: its affine parameters' into ``grads``, the input's returned.
    With xhat = (u - mean)*inv: du_in = inv*(dxhat - mean(dxhat) - xhat*mean(dxhat*xhat)) over the
    normalized axes (the rows and the map for batch norm, the features of a row for layer norm)."""
    xhat, inv = block["xhat"], block["inv"]
    axes = _norm_axes(kind, du.ndim)
    affine = axes if kind == "batch" else (0,)  # the axes the affine parameters are shared over
    grads[prefix + "weight"] = xp.sum(du * xhat, axis=affine)
    grads[prefix + "bias"] = xp.sum(du, axis=affine)
    w = params[prefix + "weight"]
    dxhat = du * (_per_channel(w, du) if kind == "batch" else w)
    return inv * (dxhat - xp.mean(dxhat, axis=axes, keepdims=True) - xhat * xp.mean(dxhat * xhat, axis=axes, keepdims=True))


def check_labels(model: str, y, n_classes: int) -> None:
    """Labels a model can take: 0/1 for logistic, 0..K-1 (K >= 2) for softmax and mlp."""
    row = get(model)
    if row.name == "linear" or (row.name == "logistic" and n_classes <= 2):
        return
    if n_classes < 2:
        raise XregInputError(f"The {model} model needs at least two classes; the labels hold one.")
    if row.name == "logistic" and n_classes != 2:
        raise XregInputError(
            f"The logistic model needs two classes; the labels hold {n_classes}. "
            "Use --model softmax or --model mlp for more."
        )
