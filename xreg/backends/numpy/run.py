"""NumPy from scratch: hand-written backpropagation and every update rule written out, one line per equation.

The parameters are one flat vector ``theta`` (the model's parameters side by side in name order, viewed
back as the named tree for the forward pass); every optimizer below is elementwise, so this is the
same algorithm torch runs on its separate tensors. A step realizes the recipe (:mod:`xreg.core.recipe`):

1. ``g`` = gradient of the mean data loss of the batch (:func:`xreg.models.backward`);
2. ``penalty`` / ``decay`` before clipping: ``g <- g + c*w`` (c per parameter: its group's coefficient);
3. ``clip``: ``g`` clipped as ``torch.nn.utils.clip_grad_norm_`` does;
4. ``decay`` on the clipped gradient: ``g <- g + c*w`` (torch's coupled weight decay);
5. ``decay`` after the direction: ``w <- w - lr_t*c*w`` before the optimizer's own update (where torch runs it);
6. ``direction`` + ``scale_by_lr``: the optimizer's update (classes below, each the equations of its torch twin).

Contract: ``init(structure, hparams, params0) -> State``; ``step(state, batch, hparams) -> State`` (pure).
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any, Mapping, NamedTuple

import numpy as np

from xreg import models
from xreg.core import progress, recipe
from xreg.core.plan import Batch, make_plan
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory, make_trajectory
from xreg.core.structure import Structure, group_strengths, split
from xreg.semantics import conventions, optimizers, schedules

NAME = "numpy"


class Layout:
    """Where each named parameter sits in the flat vector."""

    def __init__(self, arch: models.Architecture):
        self.shapes = arch.shapes
        self.slices, start = {}, 0
        for name, shape in self.shapes.items():
            size = math.prod(shape)
            self.slices[name] = slice(start, start + size)
            start += size
        self.size = start

    def tree(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        return {n: theta[sl].reshape(self.shapes[n]) for n, sl in self.slices.items()}

    def flat(self, tree: Mapping[str, Any], dtype=np.float64) -> np.ndarray:
        return np.concatenate([np.asarray(tree[n], dtype=dtype).reshape(-1) for n in self.shapes])

    def per_element(self, values: list[tuple[tuple[str, ...], Any]], dtype) -> np.ndarray:
        """A vector holding each group's value on its parameters' entries, 0 elsewhere."""
        out = np.zeros(self.size, dtype=dtype)
        for names, v in values:
            for n in names:
                out[self.slices[n]] = v
        return out


@functools.lru_cache(maxsize=64)
def layout_of(arch: models.Architecture) -> Layout:
    """The layout of ``arch``, made once (a step asks for it every time)."""
    return Layout(arch)


def clip_grad_norm(g: np.ndarray, max_norm) -> np.ndarray:
    """torch.nn.utils.clip_grad_norm_: g * min(1, max_norm / (||g||_2 + 1e-6))."""
    coef = max_norm / (np.sqrt(np.sum(g * g)) + 1e-6)
    return g * min(coef, 1.0)


# ---- optimizers: state + update, in torch's order of operations (step() copies nothing; see step()) ---------------------------------
class SGD:
    def __init__(self, o, flags, theta):
        self.mu, self.tau, self.nesterov = o["momentum"], o["dampening"], flags["nesterov"]
        self.buf = None

    def step(self, theta, g, lr, t):
        d = g
        if self.mu != 0:
            # first step: b <- g (not damped); then b <- mu*b + (1 - tau)*g
            self.buf = g.copy() if self.buf is None else self.mu * self.buf + (1 - self.tau) * g
            d = g + self.mu * self.buf if self.nesterov else self.buf
        return theta - lr * d


class Adam:
    def __init__(self, o, flags, theta):
        (self.b1, self.b2), self.eps, self.amsgrad = o["betas"], o["eps"], flags["amsgrad"]
        self.m, self.v, self.vmax = (np.zeros_like(theta) for _ in range(3))

    def step(self, theta, g, lr, t):
        self.m = self.m + (1 - self.b1) * (g - self.m)  # lerp(m, g, 1 - b1)
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
        if self.amsgrad:
            self.vmax = np.maximum(self.vmax, self.v)  # max of the raw v, corrected afterwards
            denom = np.sqrt(self.vmax) / math.sqrt(bc2) + self.eps
        else:
            denom = np.sqrt(self.v) / math.sqrt(bc2) + self.eps
        return theta - (lr / bc1) * (self.m / denom)


class RMSprop:
    def __init__(self, o, flags, theta):
        self.alpha, self.eps, self.mu, self.centered = o["alpha"], o["eps"], o["momentum"], flags["centered"]
        self.v, self.gbar, self.buf = (np.zeros_like(theta) for _ in range(3))
        self.eps_in_sqrt = o.get("eps_in_sqrt", False)  # optax's form, for a diagnosis only (not a torch option)

    def step(self, theta, g, lr, t):
        self.v = self.alpha * self.v + (1 - self.alpha) * g * g
        v = self.v
        if self.centered:
            self.gbar = self.gbar + (1 - self.alpha) * (g - self.gbar)
            v = self.v - self.gbar * self.gbar
        if self.eps_in_sqrt:
            avg = np.sqrt(v + self.eps)
        else:
            avg = np.sqrt(v) + self.eps  # eps outside the sqrt
        if self.mu > 0:
            self.buf = self.mu * self.buf + g / avg  # the buffer holds g/avg, without lr
            return theta - lr * self.buf
        return theta - lr * (g / avg)


class Adagrad:
    def __init__(self, o, flags, theta):
        self.lr_decay, self.eps = o["lr_decay"], o["eps"]
        self.S = np.full_like(theta, o["initial_accumulator_value"])
        self.eps_in_sqrt = o.get("eps_in_sqrt", False)  # optax's form, for a diagnosis only

    def step(self, theta, g, lr, t):
        clr = lr / (1 + (t - 1) * self.lr_decay)
        self.S = self.S + g * g
        avg = np.sqrt(self.S + self.eps) if self.eps_in_sqrt else np.sqrt(self.S) + self.eps
        return theta - clr * (g / avg)


class Adamax:
    def __init__(self, o, flags, theta):
        (self.b1, self.b2), self.eps = o["betas"], o["eps"]
        self.m, self.u = np.zeros_like(theta), np.zeros_like(theta)

    def step(self, theta, g, lr, t):
        self.m = self.m + (1 - self.b1) * (g - self.m)
        self.u = np.maximum(self.b2 * self.u, np.abs(g) + self.eps)
        return theta - (lr / (1 - self.b1**t)) * (self.m / self.u)


class NAdam:
    def __init__(self, o, flags, theta):
        (self.b1, self.b2), self.eps, self.psi = o["betas"], o["eps"], o["momentum_decay"]
        self.m, self.v = np.zeros_like(theta), np.zeros_like(theta)
        self.mu_product = 1.0
        # A user's plain torch loop keeps mu_product in torch's default dtype (float32 unless changed):
        # fl32(fl32(P) * fl32(mu)), measured against torch 2.13. For a diagnosis of such a loop only.
        self.float32_product = o.get("float32_mu_product", False)

    def step(self, theta, g, lr, t):
        bc2 = 1 - self.b2**t
        mu = self.b1 * (1.0 - 0.5 * 0.96 ** (t * self.psi))
        mu_next = self.b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.psi))
        self.mu_product = float(np.float32(np.float32(self.mu_product) * np.float32(mu))) if self.float32_product else self.mu_product * mu
        self.m = self.m + (1 - self.b1) * (g - self.m)
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        denom = np.sqrt(self.v / bc2) + self.eps
        theta = theta + (-lr * (1.0 - mu) / (1.0 - self.mu_product)) * (g / denom)
        return theta + (-lr * mu_next / (1.0 - self.mu_product * mu_next)) * (self.m / denom)


class RAdam:
    def __init__(self, o, flags, theta):
        (self.b1, self.b2), self.eps = o["betas"], o["eps"]
        self.m, self.v = np.zeros_like(theta), np.zeros_like(theta)

    def step(self, theta, g, lr, t):
        self.m = self.m + (1 - self.b1) * (g - self.m)
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        bc1, bc2 = 1 - self.b1**t, 1 - self.b2**t
        m_hat = self.m / bc1
        rho_inf = 2 / (1 - self.b2) - 1
        rho_t = rho_inf - 2 * t * self.b2**t / bc2
        if rho_t > 5.0:  # strict, as torch
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive = bc2**0.5 / (np.sqrt(self.v) + self.eps)  # eps on the raw sqrt(v)
            return theta - m_hat * lr * adaptive * rect
        return theta - m_hat * lr


class Adadelta:
    def __init__(self, o, flags, theta):
        self.rho, self.eps = o["rho"], o["eps"]
        self.v, self.u = np.zeros_like(theta), np.zeros_like(theta)

    def step(self, theta, g, lr, t):
        self.v = self.rho * self.v + (1 - self.rho) * g * g
        delta = np.sqrt(self.u + self.eps) / np.sqrt(self.v + self.eps) * g  # eps inside both roots
        self.u = self.rho * self.u + (1 - self.rho) * delta * delta
        return theta - lr * delta


class ASGD:
    """theta <- theta*(1 - lambd*eta_t) - eta_t*g; eta_1 = lr, eta_{t+1} = lr_t/(1 + lambd*lr_t*t)^alpha.

    torch computes each new eta in Python floats and stores it through ``torch.as_tensor``, a tensor of
    the default dtype, which xreg's torch runs set to the run's dtype: eta is rounded once to the run's
    dtype. The running average ``ax`` torch keeps is not fed back into theta, so it is not reproduced.
    """

    def __init__(self, o, flags, theta):
        self.lambd, self.alpha = o["lambd"], o["alpha"]
        self.eta = None

    def step(self, theta, g, lr, t):
        eta = lr if self.eta is None else self.eta
        theta = theta * (1 - self.lambd * eta) - eta * g
        wide = float(lr)
        self.eta = type(lr)(wide / ((1 + self.lambd * wide * t) ** self.alpha))
        return theta


def _lerp(a, b, w: float):
    """torch.lerp: ``a + w*(b - a)`` for |w| < 0.5, else ``b - (b - a)*(1 - w)``."""
    return a + w * (b - a) if abs(w) < 0.5 else b - (b - a) * (1 - w)


class Adafactor:
    """torch.optim.Adafactor, parameter by parameter (a 2-D or larger one factored into row and column
    second moments), with torch's own decoupled decay inside the step: the step size
    ``a = max(eps2, rms(w)) * min(lr, 1/sqrt(t))`` is taken from w *before* ``w <- w*(1 - lr*wd)``."""

    takes_layout = True

    def __init__(self, o, flags, theta, layout=None):
        self.layout = layout
        self.beta2_decay, (self.eps1, self.eps2), self.d = o["beta2_decay"], tuple(o["eps"]), o["d"]
        self.state: dict[str, Any] = {}

    def step(self, theta, g, lr, t, decay=None):
        dt = theta.dtype
        eps1 = float(np.finfo(dt).eps) if self.eps1 is None else self.eps1
        b = float(t) ** self.beta2_decay
        rho = min(float(lr), 1 / float(t) ** 0.5)
        P, G = self.layout.tree(theta), self.layout.tree(g)
        K = self.layout.tree(decay) if decay is not None else None
        out = {}
        for n, p in P.items():
            gr = G[n]
            alpha = max(self.eps2, float(np.linalg.norm(p)) / p.size**0.5) * rho
            if K is not None:
                p = p * (1 - K[n])
            if gr.ndim > 1:
                R, C = self.state.get(n, (np.zeros(gr.shape[:-1] + (1,), dt), np.zeros(gr.shape[:-2] + (1,) + gr.shape[-1:], dt)))
                R = _lerp(R, np.linalg.norm(gr, axis=-1, keepdims=True) ** 2 / gr.shape[-1], b)
                C = _lerp(C, np.linalg.norm(gr, axis=-2, keepdims=True) ** 2 / gr.shape[-2], b)
                self.state[n] = (R, C)
                v = (R @ C) / np.maximum(R.mean(axis=-2, keepdims=True), eps1)
            else:
                V = _lerp(self.state.get(n, np.zeros_like(gr)), gr * gr, b)
                self.state[n] = V
                v = V
            u = 1 / np.sqrt(np.maximum(v, eps1 * eps1)) * gr
            denom = max(1.0, float(np.linalg.norm(u)) / (u.size**0.5 * self.d))
            out[n] = p + (-alpha / denom) * u
        return self.layout.flat(out, dt)


# ---- Muon: Newton-Schulz in bfloat16, every rounding where torch's CPU kernels round ---------------------
# torch computes NS on ``grad.bfloat16()``: every product of two bfloat16 numbers is exact in float32, the
# sums run in float32 and each result is rounded to bfloat16. Which float32 sums torch forms decides the
# rare ties, so they are written out as its CPU kernels form them (measured against torch 2.13, AVX2):
# X @ X.T sums as torch's reduced-precision dot product (see _gram); on a transposed (non-contiguous)
# X it sums k in order. addmm(C, A, B, beta, alpha) keeps 4 partial sums over k (the tail in the first),
# adds them in order, and rounds beta*C + alpha*dot once (a fused multiply-add).
F32 = np.float32


def bf16(x: np.ndarray) -> np.ndarray:
    """Values rounded to bfloat16, nearest with ties to even, held as float32. float64 goes through float32
    first, as torch's ``.bfloat16()`` does (a double rounding: measured, 6 in a million differ from one)."""
    x = np.ascontiguousarray(x, F32)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16) << np.uint64(16)).astype(np.uint32)
    return np.where(np.isfinite(x), r.view(F32), x)


def _gram(X: np.ndarray, in_order: bool) -> np.ndarray:
    """bf16(X @ X.T) with torch's float32 sums (see above): k in order on a transposed X; else torch's
    reduced-precision dot: blocks of 64 into 8 registers of 8 lanes (k -> register k//8, lane k%8),
    the registers added as a halving tree, then blocks of 8 into the lanes, the lanes added as a halving
    tree, and the last K % 8 products added in order."""
    m, K = X.shape
    prods = X.T[:, :, None] * X.T[:, None, :]  # (K, m, m): each product exact in float32
    if in_order:
        acc = np.zeros((m, m), F32)
        for k in range(K):
            acc = acc + prods[k]
        return bf16(acc)
    blocks, vec_end = K - K % 64, K - K % 8
    regs = np.zeros((8, 8, m, m), F32)
    for j in range(0, blocks, 64):
        regs = regs + prods[j : j + 64].reshape(8, 8, m, m)
    lanes = _halving(regs)
    for j in range(blocks, vec_end, 8):
        lanes = lanes + prods[j : j + 8]
    total = _halving(lanes)
    for k in range(vec_end, K):
        total = total + prods[k]
    return bf16(total)


def _halving(a: np.ndarray) -> np.ndarray:
    """a[0] + a[h], ... along the first axis, halving until one is left (torch's vector reductions)."""
    while a.shape[0] > 1:
        h = a.shape[0] // 2
        a = a[:h] + a[h:]
    return a[0]


def _addmm(C: np.ndarray, A: np.ndarray, B: np.ndarray, beta: float, alpha: float) -> np.ndarray:
    """bf16(beta*C + alpha*(A @ B)) with torch's float32 sums and one rounding of beta*C + alpha*dot."""
    K = A.shape[1]
    prods = A.T[:, :, None] * B[:, None, :]  # (K, m, n), exact in float32
    parts = np.zeros((4,) + prods.shape[1:], F32)
    for k in range(0, K - K % 4, 4):
        parts = parts + prods[k : k + 4]
    for r in range(K - K % 4, K):
        parts[0] = parts[0] + prods[r]
    dot = ((parts[0] + parts[1]) + parts[2]) + parts[3]
    exact = np.float64(F32(beta)) * C.astype(np.float64) + (F32(alpha) * dot).astype(np.float64)
    return bf16(exact.astype(F32))


def newton_schulz(G: np.ndarray, coefficients, steps: int, eps: float) -> np.ndarray:
    """torch's ``_zeropower_via_newtonschulz``: the bfloat16 result, held as float32."""
    a, b, c = coefficients
    X = bf16(G)
    transposed = G.shape[0] > G.shape[1]
    if transposed:
        X = X.T
    norm = bf16(F32(np.sqrt(np.sum(X.astype(np.float64) ** 2))))
    X = bf16(X / max(norm, bf16(np.asarray(eps))))
    for i in range(steps):
        A = _gram(X, in_order=transposed and i == 0)
        X = _addmm(X, _addmm(A, A, A, b, c), X, a, 1.0)
    return X.T if transposed else X


class Muon:
    """torch.optim.Muon on the 2-D parameters (momentum lerp, Nesterov lerp, Newton-Schulz in bfloat16, the
    lr scaled by the shape rule); the others stepped by the paired class (``others``) on their slice.
    torch's decoupled decay ``w*(1 - lr*wd)`` runs before, as for AdamW (see _advance)."""

    takes_layout = True

    def __init__(self, o, flags, theta, layout=None):
        self.layout, self.o, self.flags = layout, o, flags
        self.matrices = [n for n in layout.shapes if len(layout.shapes[n]) == 2]
        rest = [n for n in layout.shapes if n not in self.matrices]
        self.rest = np.concatenate([np.arange(layout.slices[n].start, layout.slices[n].stop) for n in rest]) if rest else None
        paired = dict(o["paired"])
        pflags = dict(optimizers.get("muon").paired_flags(tuple(flags.items())))
        self.paired = OPTIMIZERS[flags["others"]](paired, pflags, theta[self.rest]) if rest else None
        self.buf: dict[str, np.ndarray] = {}

    def step(self, theta, g, lr, t):
        out = theta.copy()
        if self.paired is not None:
            out[self.rest] = self.paired.step(theta[self.rest], g[self.rest], lr, t)
        mu = float(self.o["momentum"])
        for n in self.matrices:
            sl, shape = self.layout.slices[n], self.layout.shapes[n]
            gr = g[sl].reshape(shape)
            buf = _lerp(self.buf.get(n, np.zeros_like(gr)), gr, 1 - mu)
            self.buf[n] = buf
            u = _lerp(gr, buf, mu) if self.flags["nesterov"] else buf
            O = newton_schulz(u, tuple(float(x) for x in self.o["ns_coefficients"]), self.flags["ns_steps"], float(self.o["eps"]))
            adjusted = float(lr) * optimizers.muon_ratio(self.flags["adjust_lr_fn"], shape)
            out[sl] = theta[sl] + (-adjusted) * O.astype(theta.dtype).reshape(-1)
        return out


OPTIMIZERS = {
    "adafactor": Adafactor, "muon": Muon,
    "sgd": SGD, "adam": Adam, "adamw": Adam, "rmsprop": RMSprop, "adagrad": Adagrad, "adamax": Adamax,
    "nadam": NAdam, "radam": RAdam, "adadelta": Adadelta, "asgd": ASGD,
}  # fmt: skip


class State(NamedTuple):
    structure: Structure
    theta: np.ndarray  # flat parameters in the run's dtype
    optimizer: Any  # the optimizer object (its buffers are the optimizer state)
    t: int  # steps taken


def init(s: Structure, hp: Mapping[str, Any], params0: Mapping[str, np.ndarray]) -> State:
    theta = layout_of(s.arch).flat(params0, np.dtype(s.dtype))
    cls = OPTIMIZERS[s.optimizer]
    extra = {"layout": layout_of(s.arch)} if getattr(cls, "takes_layout", False) else {}
    return State(s, theta, cls(hp["options"], dict(s.flags), theta, **extra), 0)


def _advance(state: State, batch: Batch, hp: Mapping[str, Any]) -> tuple[State, float, float]:
    """One update; the optimizer object is advanced in place. Returns the new state, batch loss, penalty."""
    s, dt = state.structure, np.dtype(state.structure.dtype)
    layout = layout_of(s.arch)
    theta, t, m = state.theta, state.t + 1, len(batch.y)
    lr = dt.type(schedules.lr_fn(s.schedule, dict(s.schedule_options), hp["lr"], np)(batch.epoch))
    X, y = np.asarray(batch.X, dt), np.asarray(batch.y, dt)
    loss, grads = models.backward(s.arch, layout.tree(theta), X, y, np)
    g = layout.flat(grads, dt)
    groups = group_strengths(s, hp)
    sq = [(lam, sum(float(np.sum(theta[layout.slices[n]] ** 2)) for n in names)) for names, lam in groups]
    penalty = sum(conventions.penalty(s.convention, lam, m, q) for lam, q in sq)
    coef = lambda st: layout.per_element(  # noqa: E731
        [(n, dt.type(conventions.coefficient(st.coefficient, lam, m, hp["lr"]))) for n, lam in groups], dt)
    steps = recipe.build(s)
    for st in steps:
        if st.name in ("penalty", "decay") and st.where != conventions.DIRECTION:
            g = g + coef(st) * theta  # the penalty's gradient, or coupled weight decay
        elif st.name == "clip":
            g = clip_grad_norm(g, hp["clip_norm"])
        elif st.name == "negate":  # maximize=True
            g = -g
        elif st.name == "direction" and optimizers.get(s.optimizer).decays_inside:
            decs = [d for d in steps if d.where == conventions.DIRECTION]
            k = sum(lr * coef(dec) for dec in decs) if decs else None  # torch's own decay, inside its step
            theta = state.optimizer.step(theta, g, lr, t, decay=k).astype(dt, copy=False)
        elif st.name == "direction":
            for dec in (d for d in steps if d.where == conventions.DIRECTION):
                theta = theta - (lr * coef(dec)) * theta  # torch's place: before the optimizer's own update
            theta = state.optimizer.step(theta, g, lr, t).astype(dt, copy=False)  # + scale_by_lr
    return State(s, theta, state.optimizer, t), float(loss), float(penalty)


def step(state: State, batch: Batch, hp: Mapping[str, Any]) -> State:
    """One update on one batch (pure: ``state`` and its optimizer buffers are not changed)."""
    with np.errstate(all="ignore"):
        return _advance(state._replace(optimizer=copy.deepcopy(state.optimizer)), batch, hp)[0]


def params_of(state: State) -> dict[str, np.ndarray]:
    return {n: p.astype(np.float64) for n, p in layout_of(state.structure.arch).tree(state.theta).items()}


def metrics(arch: models.Architecture, params: Mapping[str, np.ndarray], X, y) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for regression or no rows) of ``params`` on X, y."""
    z = models.forward(arch, params, X, np)
    loss = float(np.mean(models.per_example_loss(arch.head, z, y, np))) if len(y) else math.nan
    if not models.HEADS[arch.head].classification or not len(y):
        return loss, math.nan
    return loss, float(np.mean(models.correct(arch.head, z, y, np)))


def train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    if spec.port != "exact":
        raise ValueError(f"The numpy backend writes the exact torch rules only; got port={spec.port!r}.")
    data.check_for_model(spec.model)
    s, hp = split(spec, data)
    dt = np.dtype(spec.dtype)
    plan = make_plan(spec, data.n_train, s.arch)
    X, y, Xt, yt = (np.asarray(a, dt) for a in (data.X_train, data.y_train, data.X_test, data.y_test))
    state = init(s, hp, plan.params0)
    layout = layout_of(s.arch)
    rows = plan.recorded(spec.record_every)
    hist = np.full((len(rows), layout.size), np.nan)
    hist[0] = state.theta
    loss, pen = np.full(len(rows) - 1, np.nan), np.full(len(rows) - 1, np.nan)
    train_loss, train_acc, test_acc = (np.full(spec.epochs, np.nan) for _ in range(3))
    with np.errstate(all="ignore"):  # a diverging run is recorded, not raised
        for k, batch in enumerate(plan.data_batches(X, y)):
            row = int(np.searchsorted(rows, k))  # the row that holds the parameters before this step, if kept
            state, step_loss, step_pen = _advance(state, batch, hp)
            progress.tick(k + 1)
            if rows[row] == k:
                loss[row], pen[row] = step_loss, step_pen
            finite = bool(np.all(np.isfinite(state.theta)))
            after = int(np.searchsorted(rows, k + 1))  # the first kept row at or after this step
            if rows[after] == k + 1 or not finite:
                hist[after] = state.theta  # a divergence shows at the next kept row
            if not finite:
                break
            if batch.epoch_end and rows[after] == k + 1:  # an epoch's metrics where its parameters are kept
                params = layout.tree(state.theta)
                train_loss[batch.epoch], train_acc[batch.epoch] = metrics(s.arch, params, X, y)
                test_acc[batch.epoch] = metrics(s.arch, params, Xt, yt)[1]
    params = {n: hist[:, sl].reshape((-1, *layout.shapes[n])) for n, sl in layout.slices.items()}
    return make_trajectory(NAME, spec, params, loss=loss, penalty=pen, train_loss=train_loss, train_accuracy=train_acc,
                           test_accuracy=test_acc, steps_at=rows, meta={"numpy": np.__version__})  # fmt: skip
