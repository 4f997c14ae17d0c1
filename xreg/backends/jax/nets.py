"""The layered models of :mod:`xreg.models` as flax.nnx modules, configured to compute torch's arithmetic.

Each hidden block is ``nnx.Linear -> nnx.BatchNorm | nnx.LayerNorm -> activation -> dropout``, then the
``out`` ``nnx.Linear``, with these settings (flax's defaults differ; the porting conventions):

* ``nnx.Linear``: its kernel is torch's weight transposed, ``(in, out)``; no bias before a batch norm;
* ``nnx.BatchNorm(momentum=1 - 0.1, epsilon=1e-5, use_fast_variance=False)``: flax's momentum is the
  running statistics' *decay* (torch's ``momentum`` is the new batch's weight), and its variance is the
  two-pass one. flax moves ``var`` towards the *biased* batch variance and has no option for torch's
  unbiased one, so :class:`TorchBatchNorm` is ``nnx.BatchNorm`` with that one update replaced
  (``var * n/(n - 1)``) and flax's own statistics and normalization kept;
* ``nnx.LayerNorm(epsilon=1e-5, use_fast_variance=False)``;
* ``nnx.gelu(approximate=False)`` for torch's exact GELU, ``approximate=True`` for ``gelu-tanh``;
* dropout multiplies by the step's given multipliers ``keep/(1-p)`` (``nnx.Dropout`` draws its own
  mask from ``nnx.Rngs``; the masks are drawn once in NumPy for every backend).

The parameters stay in torch's names and layout (the optimizer's tree, as in the dense path): each call
loads them into a merged copy of the module (``nnx.merge``), so the whole forward is a pure function
that ``jax.grad`` differentiates and ``jax.jit``/``lax.scan`` compile.

``arch.naive`` lists the naive port's layer conventions (:mod:`xreg.semantics.layers`): each one
puts flax's default (or torch's number copied literally) back in its one place.
"""

from __future__ import annotations

import functools
import importlib.metadata
import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn.normalization import _compute_stats, _normalize

from xreg import models

ACTIVATIONS = {"tanh": jnp.tanh, "relu": nnx.relu, "gelu": functools.partial(nnx.gelu, approximate=False),
               "gelu-tanh": functools.partial(nnx.gelu, approximate=True)}  # fmt: skip


class TorchBatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` whose running variance moves towards the unbiased batch variance, as torch's does.
    Features on the last axis (NHWC for images); ``mask`` (rows, 1, ...): the batch's real rows (a padded
    batch's statistics count only those)."""

    def __init__(self, num_features: int, *, param_dtype=jnp.float32, **kwargs):
        super().__init__(num_features, param_dtype=param_dtype, **kwargs)
        # nnx.BatchNorm keeps mean and var in float32 whatever param_dtype is; torch keeps them in the module's dtype
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), param_dtype))
        self.var = nnx.BatchStat(jnp.ones((num_features,), param_dtype))

    def __call__(self, x, use_running_average=None, *, mask=None):
        if use_running_average:
            return super().__call__(x, use_running_average=True)
        axes = tuple(range(x.ndim - 1))
        mean, var = _compute_stats(x, axes, dtype=self.dtype, use_fast_variance=self.use_fast_variance, mask=mask)
        per_row = math.prod(x.shape[1:-1])
        n = x.shape[0] * per_row if mask is None else jnp.sum(mask).astype(x.dtype) * per_row
        self.mean[...] = self.momentum * self.mean[...] + (1 - self.momentum) * mean
        self.var[...] = self.momentum * self.var[...] + (1 - self.momentum) * var * (n / (n - 1))
        return _normalize(x, mean, var, self.scale[...], self.bias[...], axes, (x.ndim - 1,), self.dtype, self.epsilon)


def batch_norm(arch: models.Architecture, width: int, dtype, rngs: nnx.Rngs) -> nnx.BatchNorm:
    """torch's BatchNorm in flax, or the naive port's settings for the codes in ``arch.naive``."""
    naive = arch.naive
    cls = nnx.BatchNorm if "bn-running-var" in naive else TorchBatchNorm
    momentum = models.BATCH_NORM_MOMENTUM if "bn-momentum" in naive else 1 - models.BATCH_NORM_MOMENTUM  # torch's 0.1, copied
    return cls(width, momentum=momentum, epsilon=models.NORM_EPS, use_fast_variance="fast-variance" in naive,
               param_dtype=dtype, rngs=rngs)  # fmt: skip


def layer_norm(arch: models.Architecture, width: int, dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
    naive = arch.naive
    return nnx.LayerNorm(width, epsilon=1e-6 if "ln-eps" in naive else models.NORM_EPS,  # 1e-6: flax's default
                         use_fast_variance="fast-variance" in naive, param_dtype=dtype, rngs=rngs)  # fmt: skip


def activation(arch: models.Architecture):
    if arch.activation == "gelu" and "gelu-form" in arch.naive:
        return nnx.gelu  # flax's default: approximate=True
    return ACTIVATIONS[arch.activation]


def normalized(arch: models.Architecture, layer, x, train: bool, mask):
    """``layer`` (the block's norm) on x (rows, ...): batch norm in train mode over the rows ``mask`` keeps
    (rows,), or by its running statistics; layer norm over each row's flattened values."""
    if arch.norm == "batch":
        rows = None if mask is None else mask.reshape((-1,) + (1,) * (x.ndim - 1))
        return layer(x, use_running_average=not train, mask=rows)
    return layer(x.reshape(x.shape[0], -1)).reshape(x.shape)


class FlaxMLP(nnx.Module):
    def __init__(self, arch: models.Architecture, dtype, rngs: nnx.Rngs):
        self.arch = arch
        for (dense, norm), (_, fan_in, width) in zip(arch.blocks, arch.layers):
            setattr(self, dense[:-1], nnx.Linear(fan_in, width, use_bias=arch.has_bias(dense), param_dtype=dtype, rngs=rngs))
            if arch.norm == "batch":
                setattr(self, norm[:-1], batch_norm(arch, width, dtype, rngs))
            elif arch.norm == "layer":
                setattr(self, norm[:-1], layer_norm(arch, width, dtype, rngs))
        self.out = nnx.Linear(arch.layers[-1][1], arch.n_outputs, param_dtype=dtype, rngs=rngs)

    def __call__(self, x, drop, mask, train: bool):
        act = activation(self.arch)
        for i, (dense, norm) in enumerate(self.arch.blocks):
            x = getattr(self, dense[:-1])(x)
            if self.arch.norm != "none":
                x = normalized(self.arch, getattr(self, norm[:-1]), x, train, mask)
            x = act(x)
            if train and drop is not None:
                x = x * drop[i]
        return self.out(x)


class FlaxCNN(nnx.Module):
    """``nnx.Conv`` (HWIO kernel, torch's symmetric padding as explicit pairs) -> norm -> activation ->
    ``nnx.max_pool``/``nnx.avg_pool`` (``VALID``) -> flatten in torch's C-major order -> dropout -> out, on
    NHWC images (flax's layout): batch norm per channel on the last axis; layer norm over the whole map,
    as torch's ``LayerNorm([C, H', W'])`` (its affine parameters held in (H', W', C) order)."""

    def __init__(self, arch: models.Architecture, dtype, rngs: nnx.Rngs):
        c = self.spec = arch.conv
        self.arch = arch
        padding = "SAME" if "same-padding" in arch.naive else ((c.padding, c.padding), (c.padding, c.padding))
        self.conv = nnx.Conv(c.image[0], c.channels, (c.kernel, c.kernel), strides=(c.stride, c.stride), padding=padding,
                             use_bias=arch.has_bias("conv."), param_dtype=dtype, rngs=rngs)  # fmt: skip
        if arch.norm == "batch":
            self.norm = batch_norm(arch, c.channels, dtype, rngs)
        elif arch.norm == "layer":
            self.norm = layer_norm(arch, c.channels * math.prod(c.out_hw), dtype, rngs)
        self.out = nnx.Linear(c.features, arch.n_outputs, param_dtype=dtype, rngs=rngs)

    def __call__(self, x, drop, mask, train: bool):
        c, n = self.spec, x.shape[0]
        x = self.conv(x.reshape(n, *c.image).transpose(0, 2, 3, 1))  # NCHW rows -> NHWC
        if self.arch.norm != "none":
            x = normalized(self.arch, self.norm, x, train, mask)
        window = (c.pool_size, c.pool_size)
        x = (nnx.max_pool if c.pool == "max" else nnx.avg_pool)(activation(self.arch)(x), window, strides=window)
        if "flatten-order" not in self.arch.naive:
            x = x.transpose(0, 3, 1, 2)  # torch's flatten order: channel, row, column
        x = x.reshape(n, -1)
        if train and drop is not None:
            x = x * drop[0]
        return self.out(x)


def _kernel(w):
    """torch's weight in flax's layout: (out, in) -> (in, out); OIHW -> HWIO."""
    return w.transpose(2, 3, 1, 0) if w.ndim == 4 else w.T


def _hwc(a):
    """A (C, H, W) layer-norm parameter in flax's flattened (H, W, C) order; others as they are."""
    return a.transpose(1, 2, 0).reshape(-1) if a.ndim == 3 else a


# flax's variable of a module -> how it is read from torch's named parameters and buffers
_FROM_TORCH = {
    "kernel": lambda p, b, name: _kernel(p[name + ".weight"]),
    "bias": lambda p, b, name: _hwc(p[name + ".bias"]),
    "scale": lambda p, b, name: _hwc(p[name + ".weight"]),
    "mean": lambda p, b, name: b[name + ".running_mean"],
    "var": lambda p, b, name: b[name + ".running_var"],
}


class Net:
    """One architecture's flax module, split once (``nnx.split``) and applied as a pure function."""

    def __init__(self, arch: models.Architecture, dtype):
        self.arch = arch
        self.graphdef, state = nnx.split((FlaxCNN if arch.conv is not None else FlaxMLP)(arch, dtype, nnx.Rngs(0)))
        leaves, self.treedef = jax.tree_util.tree_flatten_with_path(state)
        self.keys = [tuple(str(getattr(e, "key", getattr(e, "name", e))) for e in path)[:2] for path, _ in leaves]

    def _leaf(self, params, buffers, module: str, field: str):
        if field == "kernel" and module == "conv" and "kernel-layout" in self.arch.naive:  # reshaped, not transposed
            w = params["conv.weight"]
            return w.reshape(w.shape[2], w.shape[3], w.shape[1], w.shape[0])
        return _FROM_TORCH[field](params, buffers, module)

    def apply(self, params, buffers, X, drop=None, mask=None, train: bool = True):
        """(logits, moved buffers): the forward pass in train mode (batch statistics, the step's dropout) or
        eval mode (running statistics, no dropout); ``mask`` (rows,) the real rows of a padded batch."""
        leaves = [jnp.asarray(self._leaf(params, buffers, module, field)) for module, field in self.keys]
        net = nnx.merge(self.graphdef, jax.tree_util.tree_unflatten(self.treedef, leaves))
        z = net(X, drop, mask, train)
        if not train or self.arch.norm != "batch":
            return z, dict(buffers)
        moved = {}
        stored = (lambda v: v.astype(jnp.float32).astype(v.dtype)) if "bn-stats-float32" in self.arch.naive else (lambda v: v)
        for _, norm in self.arch.blocks:
            layer = getattr(net, norm[:-1])
            moved.update({norm + "running_mean": stored(layer.mean[...]), norm + "running_var": stored(layer.var[...]),
                          norm + "num_batches_tracked": buffers[norm + "num_batches_tracked"] + 1})  # fmt: skip
        return z, moved


@functools.lru_cache(maxsize=64)
def net(arch: models.Architecture, dtype: str) -> Net:
    return Net(arch, jnp.dtype(dtype))


FLAX_VERSION = importlib.metadata.version("flax")
