"""PyTorch: ``nn.Linear(d, 1)`` trained by the real ``torch.optim`` optimizer and lr scheduler.

What each convention is, written as a torch user writes it:

* ``torch``: ``Optimizer(params, weight_decay=lam)``; with ``decay_bias=False`` the bias sits in a
  second param group with ``weight_decay=0``.
* ``l2-loss`` / ``scratch``: the penalty is added to the loss and autograd differentiates it
  (``mean_loss + c/2*||w||^2`` with ``c = conventions.gradient_coefficient``).
* ``decoupled``: ``AdamW`` / ``decoupled_weight_decay=True`` where torch has it (adam, adamw, nadam,
  radam); for the other optimizers ``p.mul_(1 - lr*s)`` under ``no_grad`` just before ``step()``,
  which is the same place torch's own decoupled decay runs.

The run uses the single-tensor CPU code path (``foreach=False``) and, for the run's duration, sets
``torch.set_default_dtype`` to the spec's dtype, so scalar optimizer state (step, ASGD's eta, NAdam's
mu product) has the same precision as the parameters.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from xreg import conventions, optimizers, schedules
from xreg.backends import _record
from xreg.plan import make_plan
from xreg.spec import Dataset, ExperimentSpec, Trajectory

NAME = "torch"
NATIVE_DECOUPLED = ("adam", "adamw", "nadam", "radam")


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype):
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def make_optimizer(spec: ExperimentSpec, model: torch.nn.Linear, weight_decay: float) -> torch.optim.Optimizer:
    """The torch.optim class for ``spec.optimizer`` with its torch-named options."""
    opt = optimizers.get(spec.optimizer)
    cls = getattr(torch.optim, opt.torch_class)
    kwargs = dict(spec.options)
    if spec.optimizer in ("adam", "nadam", "radam"):
        kwargs["decoupled_weight_decay"] = spec.convention == "decoupled"
    if spec.decay_bias:
        groups = [{"params": [model.weight, model.bias]}]
    else:
        groups = [{"params": [model.weight]}, {"params": [model.bias], "weight_decay": 0.0}]
    return cls(groups, lr=spec.lr, weight_decay=weight_decay, foreach=False, **kwargs)


def make_scheduler(spec: ExperimentSpec, opt: torch.optim.Optimizer):
    o = spec.schedule_options
    sched = torch.optim.lr_scheduler
    if spec.schedule == "step":
        return sched.StepLR(opt, step_size=o["step_size"], gamma=o["gamma"])
    if spec.schedule == "exponential":
        return sched.ExponentialLR(opt, gamma=o["gamma"])
    if spec.schedule == "cosine":
        return sched.CosineAnnealingLR(opt, T_max=o["T_max"], eta_min=o["eta_min"])
    if spec.schedule == "lambda":
        factor = schedules.lr_fn("lambda", o, 1.0, np)
        return sched.LambdaLR(opt, lr_lambda=lambda epoch: float(factor(epoch)))
    return None


def train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    if spec.port != "exact":
        raise ValueError(f"The torch backend is the reference; got port={spec.port!r}.")
    data.check_for_model(spec.model)
    dtype = getattr(torch, spec.dtype)
    with default_dtype(dtype), torch.no_grad():
        return _train(spec, data, dtype)


def _train(spec: ExperimentSpec, data: Dataset, dtype: torch.dtype) -> Trajectory:
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
    X, y, Xt, yt = t(data.X_train), t(data.y_train), t(data.X_test), t(data.y_test)
    plan = make_plan(spec, data.n_train, data.n_features)
    model = torch.nn.Linear(data.n_features, 1, dtype=dtype)
    model.weight.copy_(t(plan.weight0).reshape(1, -1))
    model.bias.copy_(t(plan.bias0))
    decayed = [model.weight, model.bias] if spec.decay_bias else [model.weight]
    loss_fn = torch.nn.BCEWithLogitsLoss() if spec.model == "logistic" else torch.nn.MSELoss()

    native_dec = spec.convention == "decoupled" and spec.optimizer in NATIVE_DECOUPLED
    s_dec = conventions.decoupled_rate(spec.convention, spec.lam, spec.lr, spec.decoupled_scale)
    weight_decay = spec.lam if spec.convention == "torch" else (s_dec if native_dec else 0.0)
    opt = make_optimizer(spec, model, weight_decay)
    scheduler = make_scheduler(spec, opt)

    steps, epochs = plan.steps, spec.epochs
    weights = np.full((steps + 1, data.n_features), np.nan)
    biases = np.full((steps + 1, 1), np.nan)
    weights[0], biases[0] = plan.weight0, plan.bias0
    loss_hist, pen_hist = np.full(steps, np.nan), np.full(steps, np.nan)
    train_loss, train_acc, test_acc = (np.full(epochs, np.nan) for _ in range(3))
    for k, (epoch, rows) in enumerate(plan.batches()):
        m = len(rows)
        idx = torch.from_numpy(np.array(rows))
        with torch.enable_grad():
            opt.zero_grad()
            data_loss = loss_fn(model(X[idx]).squeeze(1), y[idx])
            sq = sum((p * p).sum() for p in decayed)
            objective = data_loss
            if spec.convention in ("l2-loss", "scratch"):
                c = conventions.gradient_coefficient(spec.convention, spec.lam, m)
                objective = data_loss + conventions.l2_penalty(c, sq)
            objective.backward()
        loss_hist[k] = data_loss.item()
        pen_hist[k] = float(conventions.penalty(spec.convention, spec.lam, m, sq.item()))
        if spec.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip_norm, foreach=False)
        if s_dec and not native_dec:
            lr_now = opt.param_groups[0]["lr"]
            for p in decayed:
                p.mul_(1 - lr_now * s_dec)
        opt.step()
        weights[k + 1] = model.weight.detach().reshape(-1).double().numpy()
        biases[k + 1] = model.bias.detach().double().numpy()
        if not (np.all(np.isfinite(weights[k + 1])) and np.all(np.isfinite(biases[k + 1]))):
            break
        if (k + 1) % plan.n_batches == 0:
            if scheduler is not None:
                scheduler.step()
            train_loss[epoch] = loss_fn(model(X).squeeze(1), y).item()
            if spec.model == "logistic":
                train_acc[epoch] = _accuracy(model, X, y)
                test_acc[epoch] = _accuracy(model, Xt, yt)
    return _record.trajectory(
        NAME,
        spec,
        weight=weights,
        bias=biases,
        loss=loss_hist,
        penalty=pen_hist,
        train_loss=train_loss,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        meta={"torch": torch.__version__, "device": "cpu", "threads": str(torch.get_num_threads())},
    )


def _accuracy(model: torch.nn.Linear, X: torch.Tensor, y: torch.Tensor) -> float:
    if X.shape[0] == 0:
        return math.nan
    return ((model(X).squeeze(1) > 0) == (y == 1)).double().mean().item()
