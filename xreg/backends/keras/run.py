"""Keras 3 on its JAX backend: a ``keras.Model`` of ``keras.layers.Dense`` and the real ``keras.optimizers.*``.

The model is a ``keras.Sequential`` of Dense layers (kernel ``W.T`` of xreg's torch-shaped ``weight``) with the
run's activation between them, started from the same parameters and stepped on the same batches: each step
is ``model.stateless_call`` under ``jax.value_and_grad`` of the Keras loss (``BinaryCrossentropy``,
``SparseCategoricalCrossentropy`` from logits, or ``MeanSquaredError``: the mean over the batch) and
``optimizer.stateless_apply``, the Keras optimizer's own update (weight decay, its rule, its iteration count),
jitted once per run. ``keras.config.floatx()`` is the run's dtype while it runs (Keras keeps the optimizer's
``learning_rate`` and computes its losses in floatx: left at float32, a float64 model steps by a float32-rounded lr,
a relative 1e-8 apart from torch's). A schedule sets the optimizer's ``learning_rate`` variable before each step to the lr torch's
scheduler gives (the twin of :mod:`xreg.schedules`).

Keras fixes its backend when it is first imported (``KERAS_BACKEND``, read once). xreg imports Keras only when this
backend runs, with ``KERAS_BACKEND=jax`` set for that import whatever the user's environment says (and restored
after), so the process's Keras is on JAX; where the process had imported Keras already on another backend (a
notebook), the backend is unavailable, with the reason. The cost: Keras's import, about 1 s beside JAX's, paid only
by runs that ask for this backend.

Runs what Keras's rules and its layers express: ``--optimizer keras.*`` (Keras's rule; ``--lam`` is its
``weight_decay``, the parameters left out of the decay its ``exclude_from_weight_decay``), an L2 term in the loss
(``keras.regularizers.L2`` on the decayed kernels and biases: ``l2-sum``, ``l2-loss``), dense models (logistic, softmax, linear, mlp without norm or dropout), a plain mean
loss, every count-based lr schedule. The rest is refused with the reason (not yet built, or not Keras's).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Mapping

import numpy as np

from xreg import models, optimizers, schedules
from xreg.core import progress
from xreg.core.plan import make_plan
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory, make_trajectory
from xreg.core.structure import Structure, group_strengths, split
from xreg.semantics import conventions

NAME = "keras"
COMPILED = True  # a run is compiled steps (the caller waits on it in a worker thread, to stay interruptible)
def _activation(keras, name: str):
    """Keras's activation for xreg's name: torch's exact GELU, or its tanh approximation (``approximate=True``)."""
    if name == "gelu":
        return lambda x: keras.activations.gelu(x, approximate=False)
    if name == "gelu-tanh":
        return lambda x: keras.activations.gelu(x, approximate=True)
    return name  # 'tanh', 'relu'
PLACES = (conventions.DIRECTION, conventions.LOSS, conventions.NOWHERE)  # Keras's weight_decay, a loss term, none


def load_keras():
    """Keras on its JAX backend (see the module); raises BackendUnavailable where that cannot be had."""
    from xreg.backends import BackendUnavailable

    if "keras" in sys.modules:
        import keras

        if keras.backend.backend() != "jax":
            raise BackendUnavailable(f"keras was imported on its {keras.backend.backend()!r} backend before xreg ran it; the keras "
                                     "backend needs Keras on JAX (start a new process, or set KERAS_BACKEND=jax before importing keras)")  # fmt: skip
        return keras
    before = os.environ.get("KERAS_BACKEND")
    os.environ["KERAS_BACKEND"] = "jax"
    try:
        import keras
    except ImportError as exc:
        raise BackendUnavailable(f"backend 'keras' is unavailable: {exc}") from exc
    finally:
        if before is None:
            os.environ.pop("KERAS_BACKEND", None)
        else:
            os.environ["KERAS_BACKEND"] = before
    return keras


def _refuse(spec: ExperimentSpec, s: Structure) -> None:
    """One line for what this backend does not run (yet, or ever)."""
    opt = optimizers.get(spec.optimizer)
    arch = s.arch
    why = None
    if opt.framework != "keras":
        why = (f"it runs Keras's optimizers (--optimizer {', '.join(n for n, o in optimizers.OPTIMIZERS.items() if o.framework == 'keras')}); "
               f"'{spec.optimizer}' is torch's rule (its naive port to Keras is not built yet)")  # fmt: skip
    elif conventions.get(spec.convention).enters not in PLACES:
        why = f"Keras has no {spec.convention!r} decay (its weight_decay is decoupled; its L2 is a loss term: l2-loss, l2-sum)"
    elif conventions.get(spec.convention).enters == conventions.DIRECTION and spec.decoupled_scale != "lr":
        why = "Keras's weight_decay is times the current lr (decoupled_scale 'lr')"
    elif arch.layered and (arch.conv is not None or arch.norm != "none" or arch.dropout > 0):
        why = "it builds dense models (logistic, softmax, linear, mlp without norm or dropout) so far"
    elif not arch.loss.plain:
        why = "it runs the plain mean loss so far (no class weights, label smoothing or sum reduction)"
    elif s.clip or s.accumulate > 1 or s.resume_at is not None or s.cycled or schedules.reads_loss(s.schedule):
        why = "it runs no clipping, accumulation, resume, cycled momentum or ReduceLROnPlateau so far"
    elif len({v for _, v in spec.group_decay}) > 1 or (spec.group_decay and any(v != spec.lam for _, v in spec.group_decay)):
        why = "Keras's optimizer has one weight_decay (per-group strengths are not Keras's)"
    elif spec.port != "exact" or spec.naive_layers:
        why = "it runs Keras itself, not a naive port"
    if why:
        from xreg.backends import BackendUnavailable

        raise BackendUnavailable(f"the keras backend cannot run this: {why}")


def _model(keras, arch: models.Architecture, dtype: str, l2: Mapping[str, float]):
    """The Dense stack; ``l2``: parameter name -> c of a ``keras.regularizers.L2(c)`` on it (an L2 term in the loss)."""
    layers = [keras.Input((arch.n_features,), dtype=dtype)]
    reg = lambda n: keras.regularizers.L2(l2[n]) if n in l2 else None  # noqa: E731
    for i, (prefix, _, fan_out) in enumerate(arch.layers):
        last = i == len(arch.layers) - 1
        layers.append(keras.layers.Dense(fan_out, activation=None if last else _activation(keras, arch.activation), dtype=dtype,
                                         kernel_regularizer=reg(prefix + "weight"), bias_regularizer=reg(prefix + "bias"),
                                         name=prefix.rstrip(".") or "dense"))  # fmt: skip
    return keras.Sequential(layers)


def _loss(keras, head: str):
    """The mean loss of Keras's per-example op, summed with ``ops.sum`` and divided by the rows. Not the
    ``keras.losses`` classes: they reduce with ``ops.mean``, which (Keras 3.15.1, JAX backend) computes a float64
    mean in float32 (``dtypes.result_type('float64', 'float32')`` is float32), 7e-9 from the exact mean here."""
    ops = keras.ops

    def mean_loss(y, z):
        if head == "bce":
            each = ops.binary_crossentropy(y[:, None], z, from_logits=True)[:, 0]
        elif head == "ce":
            each = ops.sparse_categorical_crossentropy(y, z, from_logits=True)
        else:
            each = ops.square(z[:, 0] - y)
        return ops.sum(each) / each.shape[0]

    return mean_loss


def _optimizer(keras, spec: ExperimentSpec, s: Structure, model):
    opt = optimizers.get(spec.optimizer)
    options = {k: v for k, v in spec.options.items() if k in opt.defaults}
    wd = spec.lam if conventions.get(spec.convention).enters == conventions.DIRECTION and spec.lam else None
    if wd is None and opt.default_weight_decay:  # a class whose weight_decay must be a float (Keras's AdamW): 0, no decay
        wd = 0.0
    o = getattr(keras.optimizers, opt.keras_class)(learning_rate=float(spec.lr), weight_decay=wd, **options)
    if wd is not None:
        kept = [v for v, n in zip(model.trainable_variables, _names(s.arch)) if n not in s.decayed]
        if kept:
            o.exclude_from_weight_decay(var_list=kept)
    o.build(model.trainable_variables)
    return o


def _names(arch: models.Architecture) -> list[str]:
    """xreg's parameter name of each of the model's trainable variables, in their order (kernel, bias per layer)."""
    return [prefix + k for prefix, _, _ in arch.layers for k in ("weight", "bias")]


def _to_keras(arch: models.Architecture, params: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    return [np.asarray(params[n]).T if n.endswith("weight") else np.asarray(params[n]) for n in _names(arch)]


def train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    data.check_for_model(spec.model)
    s, hp = split(spec, data)
    _refuse(spec, s)
    keras = load_keras()
    import jax

    before = keras.config.floatx()
    keras.config.set_floatx(spec.dtype)  # the optimizer's lr and the losses in the run's dtype, as a float64 Keras user sets it
    try:
        with jax.enable_x64(spec.dtype == "float64"):  # a float32 run as a float32 Keras user runs it (x64 off)
            return _train(keras, spec, data, s, hp)
    finally:
        keras.config.set_floatx(before)


def _train(keras, spec: ExperimentSpec, data: Dataset, s: Structure, hp) -> Trajectory:
    import jax
    import jax.numpy as jnp

    dt = np.dtype(spec.dtype)
    plan = make_plan(spec, data.n_train, s.arch)
    model = _model(keras, s.arch, spec.dtype, _l2(spec, s, hp))
    for v, value in zip(model.trainable_variables, _to_keras(s.arch, plan.params0)):
        v.assign(value.astype(dt))
    opt = _optimizer(keras, spec, s, model)
    loss_fn, names = _loss(keras, s.arch.head), _names(s.arch)
    lr_index = next(i for i, v in enumerate(opt.variables) if v.path.endswith("learning_rate"))

    def objective(tv, X, y):
        z, _, reg_losses = model.stateless_call(tv, [], X, training=True, return_losses=True)
        data_loss = loss_fn(y, z)
        return data_loss + sum(reg_losses), data_loss  # Keras's regularizers' terms: model.losses

    @jax.jit
    def step(tv, ov, X, y, lr):
        ov = [lr.astype(ov[lr_index].dtype) if i == lr_index else v for i, v in enumerate(ov)]
        (_, data_loss), grads = jax.value_and_grad(objective, has_aux=True)(tv, X, y)
        tv, ov = opt.stateless_apply(ov, grads, tv)
        return tv, ov, data_loss

    tv = [v.value for v in model.trainable_variables]
    ov = [v.value for v in opt.variables]
    lrs = schedules.lrs_of(s.schedule, dict(s.schedule_options), spec.lr, s.calls)
    kept = plan.recorded(spec.record_every)
    hist = {n: np.full((len(kept), *shape), np.nan) for n, shape in s.arch.shapes.items()}
    _keep(hist, 0, tv, names)
    loss, pen = np.full(len(kept) - 1, np.nan), np.full(len(kept) - 1, np.nan)
    X, y = np.asarray(data.X_train, dt), np.asarray(data.y_train, dt)
    for k, batch in enumerate(plan.data_batches(X, y)):
        row = int(np.searchsorted(kept, k))
        if kept[row] == k:
            pen[row] = _recorded_penalty(spec, s, hp, tv, names, len(batch.y))
        lr = lrs[batch.count if s.schedule_every == "step" else batch.epoch]
        tv, ov, step_loss = step(tv, ov, jnp.asarray(batch.X, dt), jnp.asarray(batch.y, dt), jnp.asarray(lr, dt))
        if kept[row] == k:
            loss[row] = float(step_loss)
        after = int(np.searchsorted(kept, k + 1))
        finite = all(bool(jnp.all(jnp.isfinite(v))) for v in tv)
        if kept[after] == k + 1 or not finite:
            _keep(hist, after, tv, names)
        progress.tick(k + 1)
        if not finite:
            break
    train_loss, train_acc, test_acc = _metrics(model, loss_fn, s, hist, kept, plan, data, dt)
    return make_trajectory(NAME, spec, hist, loss=loss, penalty=pen, train_loss=train_loss, train_accuracy=train_acc,
                           test_accuracy=test_acc, steps_at=kept,
                           meta={"keras": keras.__version__, "keras_backend": keras.backend.backend(), "jax": jax.__version__,
                                 "optimizer": f"keras.optimizers.{optimizers.get(spec.optimizer).keras_class}"})  # fmt: skip


def _keep(hist, row, tv, names) -> None:
    for n, v in zip(names, tv):
        a = np.asarray(v, np.float64)
        hist[n][row] = a.T if n.endswith("weight") else a


def _l2(spec: ExperimentSpec, s: Structure, hp) -> dict[str, float]:
    """The ``keras.regularizers.L2(c)`` of each decayed parameter for an L2 term in the loss: the convention's
    c/2*||w||^2 is Keras's c'*sum(w^2) with c' = c/2 (``l2-sum``: L2(lam); ``l2-loss``: L2(lam/2)); none otherwise."""
    c = conventions.get(spec.convention)
    if c.enters != conventions.LOSS or not spec.lam:
        return {}
    return {n: conventions.coefficient(c.coefficient, lam, 1, hp["lr"]) / 2 for ns, lam in group_strengths(s, hp) for n in ns}


def _recorded_penalty(spec: ExperimentSpec, s: Structure, hp, tv, names, m) -> float:
    sqs = [(lam, sum(float(np.sum(np.asarray(tv[names.index(n)], np.float64) ** 2)) for n in ns)) for ns, lam in group_strengths(s, hp)]
    return float(sum(conventions.penalty(s.convention, lam, m, sq) for lam, sq in sqs))


def _metrics(model, loss_fn, s: Structure, hist, kept, plan, data: Dataset, dt):
    """Each kept epoch's training loss and accuracies at its parameters (Keras's forward and loss; eval mode)."""
    epochs = len(plan.epoch_ends())
    out = [np.full(epochs, np.nan) for _ in range(3)]
    ends = plan.epoch_ends() + 1
    names = _names(s.arch)
    for e in np.flatnonzero(np.isin(ends, kept)):
        row = int(np.searchsorted(kept, ends[e]))
        tv = [hist[n][row].T.astype(dt) if n.endswith("weight") else hist[n][row].astype(dt) for n in names]
        for j, (A, t) in enumerate(((data.X_train, data.y_train), (data.X_test, data.y_test))):
            if not len(t):
                continue
            z = np.asarray(model.stateless_call(tv, [], np.asarray(A, dt), training=False)[0], np.float64)
            if j == 0:
                out[0][e] = float(loss_fn(np.asarray(t, dt), z.astype(dt)))
            if models.HEADS[s.arch.head].classification:
                out[1 + j][e] = float(np.mean(models.correct(s.arch.head, z, np.asarray(t, np.float64), np)))
    return out
