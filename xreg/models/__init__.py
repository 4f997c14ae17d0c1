"""The models, each stated once: parameter names and shapes (torch's), forward, loss and accuracy.

A model is a stack of dense layers ``z <- z @ W.T + b`` (torch ``nn.Linear``), with an activation
between layers, and a *head* that turns the last layer's output ``z`` (m, K) into a mean loss:

=============  ==========================================  ===============================================
model          parameters (torch names and shapes)         loss (mean over the batch's m rows)
=============  ==========================================  ===============================================
``linear``     ``weight`` (1, d), ``bias`` (1,)            MSE ``(z - y)^2``
``logistic``   ``weight`` (1, d), ``bias`` (1,)            BCE on logits ``log(1 + e^z) - y*z``, y in {0, 1}
``softmax``    ``weight`` (K, d), ``bias`` (K,)            cross-entropy ``logsumexp(z) - z_y``, y in 0..K-1
``mlp``        ``hidden.weight`` (H, d), ``hidden.bias``   ``tanh`` or ``relu`` after the hidden layer;
               (H,), ``out.weight`` (K, H), ``out.bias``   the logistic head (K = 1) for two classes, the
               (K,)                                        softmax head for more
=============  ==========================================  ===============================================

Everything here is NumPy-free math written against an array namespace ``xp`` (``numpy`` or
``jax.numpy``): the JAX and NumPy backends both use :func:`backward`, the forward pass differentiated by
hand (XLA compiles its few matrix products better than autodiff's graph; the JAX backend holds it to
``jax.grad`` of :func:`forward`, tested); the torch backend builds the same layers from ``torch.nn.Linear``
and torch's own loss classes, differentiated by autograd.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from xreg.core.checks import XregInputError, check_choice, check_int

NAMES = ("logistic", "linear", "softmax", "mlp")
ACTIVATIONS = ("tanh", "relu")
DEFAULT_HIDDEN = 16


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


@dataclass(frozen=True)
class Model:
    """One row of the model table: how many outputs it has for K classes, and its head."""

    name: str
    hidden: bool  # one hidden layer
    summary: str
    default_init: str

    def head(self, n_classes: int) -> str:
        if self.name == "linear":
            return "mse"
        if self.name == "logistic" or (self.name == "mlp" and n_classes == 2):
            return "bce"
        return "ce"


MODELS: dict[str, Model] = {
    m.name: m
    for m in [
        Model("logistic", False, "binary logistic regression", "zeros"),
        Model("linear", False, "least squares", "zeros"),
        Model("softmax", False, "K-class softmax regression", "zeros"),
        Model("mlp", True, "one hidden layer, logistic or softmax head", "torch"),
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
    hidden: int | None = None
    activation: str | None = None

    @property
    def layers(self) -> tuple[tuple[str, int, int], ...]:
        """(name prefix, fan_in, fan_out) of each dense layer, input first."""
        if self.hidden is None:
            return (("", self.n_features, self.n_outputs),)
        return (("hidden.", self.n_features, self.hidden), ("out.", self.hidden, self.n_outputs))

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameter name -> shape, in torch's ``named_parameters()`` order."""
        out: dict[str, tuple[int, ...]] = {}
        for prefix, fan_in, fan_out in self.layers:
            out[prefix + "weight"] = (fan_out, fan_in)
            out[prefix + "bias"] = (fan_out,)
        return out

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.shapes)

    @property
    def size(self) -> int:
        return sum(math.prod(s) for s in self.shapes.values())

    def describe(self) -> str:
        return ", ".join(f"{n} {tuple(s)}" for n, s in self.shapes.items())


def architecture(
    model: str, n_features: int, n_classes: int, hidden: int | None = None, activation: str | None = None
) -> Architecture:
    """The architecture of ``model`` for ``n_features`` inputs and ``n_classes`` classes (1 for regression)."""
    row = get(model)
    head = row.head(n_classes)
    n_out = n_classes if head == "ce" else 1
    if not row.hidden:
        return Architecture(model, n_features, n_out, head)
    hidden = check_int("hidden", DEFAULT_HIDDEN if hidden is None else hidden, 1, 100_000)
    activation = check_choice("activation", activation or "tanh", ACTIVATIONS)
    return Architecture(model, n_features, n_out, head, hidden, activation)


# ---- the math, once, in an array namespace xp ------------------------------------------------------
def activate(name: str, z, xp):
    return xp.tanh(z) if name == "tanh" else xp.maximum(z, 0.0)


def activation_derivative(name: str, z, a, xp):
    """d act(z)/dz from the pre-activation z and the activation a = act(z)."""
    return 1 - a * a if name == "tanh" else (z > 0).astype(z.dtype)


def forward(arch: Architecture, params: dict[str, Any], X, xp, keep: bool = False):
    """Logits (m, K) of the rows of X; with ``keep`` also the list of (input, pre-activation) per layer."""
    h, kept = X, []
    for i, (prefix, _, _) in enumerate(arch.layers):
        z = h @ params[prefix + "weight"].T + params[prefix + "bias"]
        kept.append((h, z))
        h = z if i == len(arch.layers) - 1 else activate(arch.activation, z, xp)
    return (h, kept) if keep else h


def per_example_loss(head: str, z, y, xp):
    """Loss of each row from its logits z (m, K) and target y (m,)."""
    if head == "mse":
        return (z[:, 0] - y) ** 2
    if head == "bce":
        return xp.logaddexp(0.0, z[:, 0]) - y * z[:, 0]
    zmax = xp.max(z, axis=1, keepdims=True)
    lse = zmax[:, 0] + xp.log(xp.sum(xp.exp(z - zmax), axis=1))
    return lse - xp.take_along_axis(z, y.astype(int)[:, None], axis=1)[:, 0]


def loss_gradient(head: str, z, y, xp):
    """d loss_i / d z for each row (m, K): the residual each head sends back."""
    if head == "mse":
        return 2 * (z - y[:, None])
    if head == "bce":
        return 0.5 * (1 + xp.tanh(0.5 * z)) - y[:, None]  # sigmoid(z) - y, overflow-free
    e = xp.exp(z - xp.max(z, axis=1, keepdims=True))
    p = e / xp.sum(e, axis=1, keepdims=True)
    onehot = (xp.arange(z.shape[1])[None, :] == y.astype(int)[:, None]).astype(z.dtype)
    return p - onehot


def correct(head: str, z, y, xp):
    """1 where the prediction is right (bce: z > 0 <=> y == 1; ce: argmax z == y)."""
    if head == "bce":
        return (z[:, 0] > 0) == (y == 1)
    return xp.argmax(z, axis=1) == y.astype(int)


def backward(arch: Architecture, params: dict[str, Any], X, y, xp, valid=None, m=None, per_example=None,
             rows_first: bool = False):  # fmt: skip
    """Mean loss over the rows of X and its gradient by parameter name: backpropagation by hand.

    ``valid`` (bool per row) leaves padding rows out of both, and ``m`` is then the number of real rows;
    ``per_example(z, y)`` replaces :func:`per_example_loss` for the recorded loss (not the gradient).
    ``rows_first``: a one-output layer's weight gradient as ``sum_i delta_i * x_i`` (one pass over the
    rows: XLA reads a tall X at twice the speed of its matrix-vector product); otherwise ``X^T delta``,
    the form XLA batches into one matrix product under ``vmap``. The same sum, rounded differently.
    """
    m = X.shape[0] if m is None else m
    z, kept = forward(arch, params, X, xp, keep=True)
    per = (per_example or (lambda z_, y_: per_example_loss(arch.head, z_, y_, xp)))(z, y)
    delta = loss_gradient(arch.head, z, y, xp) / m
    if valid is not None:
        per, delta = xp.where(valid, per, 0.0), xp.where(valid[:, None], delta, 0.0)
    loss = xp.sum(per) / m
    grads = {}
    for i in range(len(arch.layers) - 1, -1, -1):
        prefix = arch.layers[i][0]
        inp, _ = kept[i]
        if rows_first and delta.shape[1] == 1:
            grads[prefix + "weight"] = xp.sum(inp * delta, axis=0)[None, :]
        else:
            grads[prefix + "weight"] = (inp.T @ delta).T  # not delta.T @ inp: XLA batches this form 5x faster under vmap
        grads[prefix + "bias"] = xp.ones(delta.shape[0], delta.dtype) @ delta  # a product, as the weight's
        if i:
            z_prev = kept[i - 1][1]
            delta = (delta @ params[prefix + "weight"]) * activation_derivative(arch.activation, z_prev, inp, xp)
    return loss, {n: grads[n] for n in arch.names}


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
