"""NumPy from scratch: analytic gradients and every update rule written out, one line per equation.

The parameters are one vector ``theta = [weight..., bias]``; every optimizer below is elementwise, so
this is the same algorithm torch runs on its separate ``weight`` and ``bias`` tensors. Each step:

1. ``g`` = gradient of the mean data loss of the batch (+ the penalty of a loss-side convention);
2. ``g`` clipped to ``clip_norm`` as ``torch.nn.utils.clip_grad_norm_`` does;
3. ``g <- g + lam*w`` for the ``torch`` convention (coupled decay, added inside ``optimizer.step``);
4. ``w <- w - lr_t*s*w`` for the ``decoupled`` convention, before the optimizer's own update;
5. the optimizer's update (classes below, each the equations of its ``torch.optim`` twin).
"""

from __future__ import annotations

import math

import numpy as np

from xreg import conventions, schedules
from xreg.backends import _record
from xreg.plan import make_plan
from xreg.spec import Dataset, ExperimentSpec, Trajectory

NAME = "numpy"


# ---- model --------------------------------------------------------------------------------------
def data_loss_and_grad(model: str, X: np.ndarray, y: np.ndarray, theta: np.ndarray):
    """Mean loss over the rows of X and its gradient in theta = [w, b].

    logistic: loss_i = log(1 + exp(z_i)) - y_i*z_i, d loss_i/dz_i = sigmoid(z_i) - y_i;
    linear:   loss_i = (z_i - y_i)^2,                 d loss_i/dz_i = 2*(z_i - y_i).
    """
    m = X.shape[0]
    z = X @ theta[:-1] + theta[-1]
    if model == "logistic":
        loss = np.mean(np.logaddexp(0, z) - y * z)
        r = 0.5 * (1 + np.tanh(0.5 * z)) - y  # sigmoid(z) - y, overflow-free
    else:
        loss = np.mean((z - y) ** 2)
        r = 2 * (z - y)
    grad = np.empty_like(theta)
    grad[:-1] = X.T @ r / m
    grad[-1] = np.sum(r) / m
    return loss, grad


def accuracy(X: np.ndarray, y: np.ndarray, theta: np.ndarray) -> float:
    if X.shape[0] == 0:
        return math.nan
    return float(np.mean(((X @ theta[:-1] + theta[-1]) > 0) == (y == 1)))


def clip_grad_norm(g: np.ndarray, max_norm: float) -> np.ndarray:
    """torch.nn.utils.clip_grad_norm_: g * min(1, max_norm / (||g||_2 + 1e-6))."""
    coef = max_norm / (np.sqrt(np.sum(g * g)) + 1e-6)
    return g * min(coef, 1.0)


# ---- optimizers: state + update, in torch's order of operations ---------------------------------
class SGD:
    def __init__(self, o, theta):
        self.mu, self.tau, self.nesterov = o["momentum"], o["dampening"], o["nesterov"]
        self.buf = None

    def step(self, theta, g, lr, t):
        d = g
        if self.mu != 0:
            # first step: b <- g (not damped); then b <- mu*b + (1 - tau)*g
            self.buf = g.copy() if self.buf is None else self.mu * self.buf + (1 - self.tau) * g
            d = g + self.mu * self.buf if self.nesterov else self.buf
        return theta - lr * d


class Adam:
    def __init__(self, o, theta):
        (self.b1, self.b2), self.eps, self.amsgrad = o["betas"], o["eps"], o["amsgrad"]
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
    def __init__(self, o, theta):
        self.alpha, self.eps, self.mu, self.centered = o["alpha"], o["eps"], o["momentum"], o["centered"]
        self.v, self.gbar, self.buf = (np.zeros_like(theta) for _ in range(3))

    def step(self, theta, g, lr, t):
        self.v = self.alpha * self.v + (1 - self.alpha) * g * g
        if self.centered:
            self.gbar = self.gbar + (1 - self.alpha) * (g - self.gbar)
            avg = np.sqrt(self.v - self.gbar * self.gbar) + self.eps  # eps outside the sqrt
        else:
            avg = np.sqrt(self.v) + self.eps
        if self.mu > 0:
            self.buf = self.mu * self.buf + g / avg  # the buffer holds g/avg, without lr
            return theta - lr * self.buf
        return theta - lr * (g / avg)


class Adagrad:
    def __init__(self, o, theta):
        self.lr_decay, self.eps = o["lr_decay"], o["eps"]
        self.S = np.full_like(theta, o["initial_accumulator_value"])

    def step(self, theta, g, lr, t):
        clr = lr / (1 + (t - 1) * self.lr_decay)
        self.S = self.S + g * g
        return theta - clr * (g / (np.sqrt(self.S) + self.eps))


class Adamax:
    def __init__(self, o, theta):
        (self.b1, self.b2), self.eps = o["betas"], o["eps"]
        self.m, self.u = np.zeros_like(theta), np.zeros_like(theta)

    def step(self, theta, g, lr, t):
        self.m = self.m + (1 - self.b1) * (g - self.m)
        self.u = np.maximum(self.b2 * self.u, np.abs(g) + self.eps)
        return theta - (lr / (1 - self.b1**t)) * (self.m / self.u)


class NAdam:
    def __init__(self, o, theta):
        (self.b1, self.b2), self.eps, self.psi = o["betas"], o["eps"], o["momentum_decay"]
        self.m, self.v = np.zeros_like(theta), np.zeros_like(theta)
        self.mu_product = 1.0

    def step(self, theta, g, lr, t):
        bc2 = 1 - self.b2**t
        mu = self.b1 * (1.0 - 0.5 * 0.96 ** (t * self.psi))
        mu_next = self.b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * self.psi))
        self.mu_product *= mu
        self.m = self.m + (1 - self.b1) * (g - self.m)
        self.v = self.b2 * self.v + (1 - self.b2) * g * g
        denom = np.sqrt(self.v / bc2) + self.eps
        theta = theta + (-lr * (1.0 - mu) / (1.0 - self.mu_product)) * (g / denom)
        return theta + (-lr * mu_next / (1.0 - self.mu_product * mu_next)) * (self.m / denom)


class RAdam:
    def __init__(self, o, theta):
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
    def __init__(self, o, theta):
        self.rho, self.eps = o["rho"], o["eps"]
        self.v, self.u = np.zeros_like(theta), np.zeros_like(theta)

    def step(self, theta, g, lr, t):
        self.v = self.rho * self.v + (1 - self.rho) * g * g
        delta = np.sqrt(self.u + self.eps) / np.sqrt(self.v + self.eps) * g  # eps inside both roots
        self.u = self.rho * self.u + (1 - self.rho) * delta * delta
        return theta - lr * delta


class ASGD:
    """theta <- theta*(1 - lambd*eta_t) - eta_t*g; eta_1 = lr, eta_{t+1} = lr_t/(1 + lambd*lr_t*t)^alpha.

    The running average ``ax`` torch keeps is not fed back into theta, so it is not reproduced.
    """

    def __init__(self, o, theta):
        self.lambd, self.alpha = o["lambd"], o["alpha"]
        self.eta = None

    def step(self, theta, g, lr, t):
        eta = lr if self.eta is None else self.eta
        theta = theta * (1 - self.lambd * eta) - eta * g
        self.eta = lr / ((1 + self.lambd * lr * t) ** self.alpha)
        return theta


OPTIMIZERS = {
    "sgd": SGD, "adam": Adam, "adamw": Adam, "rmsprop": RMSprop, "adagrad": Adagrad, "adamax": Adamax,
    "nadam": NAdam, "radam": RAdam, "adadelta": Adadelta, "asgd": ASGD,
}  # fmt: skip


def train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    if spec.port != "exact":
        raise ValueError(f"The numpy backend writes the exact torch rules only; got port={spec.port!r}.")
    data.check_for_model(spec.model)
    dt = np.dtype(spec.dtype)
    cast = lambda a: np.asarray(a, dtype=dt)  # noqa: E731
    X, y, Xt, yt = cast(data.X_train), cast(data.y_train), cast(data.X_test), cast(data.y_test)
    plan = make_plan(spec, data.n_train, data.n_features)
    theta = cast(np.concatenate([plan.weight0, plan.bias0]))
    decayed = np.ones_like(theta)
    decayed[-1] = 1.0 if spec.decay_bias else 0.0
    lr_of_epoch = schedules.lr_fn(spec.schedule, spec.schedule_options, spec.lr, np)
    s_dec = conventions.decoupled_rate(spec.convention, spec.lam, spec.lr, spec.decoupled_scale)
    opt = OPTIMIZERS[spec.optimizer](spec.options, theta)

    hist = np.full((plan.steps + 1, theta.size), np.nan, dtype=dt)
    hist[0] = theta
    loss = np.full(plan.steps, np.nan)
    pen = np.full(plan.steps, np.nan)
    epochs = spec.epochs
    train_loss, train_acc, test_acc = (np.full(epochs, np.nan) for _ in range(3))
    with np.errstate(all="ignore"):  # a diverging run is recorded, not raised
        for k, (epoch, rows) in enumerate(plan.batches()):
            t, m = k + 1, len(rows)
            lr = dt.type(lr_of_epoch(epoch))
            loss[k], g = data_loss_and_grad(spec.model, X[rows], y[rows], theta)
            w = decayed * theta
            pen[k] = conventions.penalty(spec.convention, spec.lam, m, np.sum(w * w))
            if spec.convention in ("l2-loss", "scratch"):  # the penalty's gradient is part of the loss
                g = g + dt.type(conventions.gradient_coefficient(spec.convention, spec.lam, m)) * w
            if spec.clip_norm is not None:
                g = clip_grad_norm(g, spec.clip_norm)
            if spec.convention == "torch":  # coupled weight decay, inside optimizer.step()
                g = g + dt.type(spec.lam) * w
            if s_dec:
                theta = theta - (lr * dt.type(s_dec)) * w
            theta = opt.step(theta, g, lr, t).astype(dt, copy=False)
            hist[t] = theta
            if not np.all(np.isfinite(theta)):
                break
            if (k + 1) % plan.n_batches == 0:
                train_loss[epoch] = data_loss_and_grad(spec.model, X, y, theta)[0]
                if spec.model == "logistic":
                    train_acc[epoch], test_acc[epoch] = accuracy(X, y, theta), accuracy(Xt, yt, theta)
    return _record.trajectory(
        NAME,
        spec,
        weight=hist[:, :-1],
        bias=hist[:, -1:],
        loss=loss,
        penalty=pen,
        train_loss=train_loss,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        meta={"numpy": np.__version__},
    )
