"""NumPy from scratch: hand-written backpropagation and every update rule written out, one line per equation.

The parameters are one flat vector ``theta`` (the model's parameters side by side in name order, viewed
back as the named tree for the forward pass); every optimizer below is elementwise, so this is the
same algorithm torch runs on its separate tensors. A step realizes the recipe (:mod:`xreg.core.recipe`):

1. ``g`` = gradient of the mean data loss of the batch (:func:`xreg.models.backward`);
2. ``penalty`` / ``decay`` before clipping: ``g <- g + c*w`` (c per parameter: its group's coefficient);
3. ``clip``: ``g`` clipped as ``torch.nn.utils.clip_grad_norm_`` (or ``clip_grad_value_``) does;
4. ``decay`` on the clipped gradient: ``g <- g + c*w`` (torch's coupled weight decay);
5. ``decay`` after the direction: ``w <- w - lr_t*c*w`` before the optimizer's own update (where torch runs it);
6. ``direction`` + ``scale_by_lr``: the optimizer's update, its module's NumPy reference (:mod:`xreg.optimizers`).

Contract: ``init(structure, hparams, params0) -> State``; ``step(state, batch, hparams) -> State`` (pure).
"""

from __future__ import annotations

import copy
import pickle
import functools
import math
from typing import Any, Mapping, NamedTuple

import numpy as np

from xreg import models
from xreg.core import progress, recipe
from xreg.core.plan import Batch, make_plan
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory, make_trajectory
from xreg.core.structure import Structure, check_steppable, group_strengths, split
from xreg import optimizers
from xreg import schedules
from xreg.semantics import clipping, conventions

NAME = "numpy"


class Layout:
    """Where each named parameter sits in the flat vector (``shapes``: name -> shape, in vector order)."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]):
        self.shapes = dict(shapes)
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
    return Layout(arch.shapes)


def p_norm(v: np.ndarray, p: float):
    """||v||_p: max |v| for p = inf, the root of the sum of squares for 2, (sum |v|^p)^(1/p) else."""
    if math.isinf(p):
        return np.max(np.abs(v), initial=0.0)
    if p == 2.0:
        return np.sqrt(np.sum(v * v))
    return np.sum(np.abs(v) ** p) ** (1.0 / p)


def clip_grad_norm(g: np.ndarray, max_norm, p: float = 2.0) -> np.ndarray:
    """torch.nn.utils.clip_grad_norm_: g * min(1, max_norm / (||g||_p + 1e-6))."""
    coef = max_norm / (p_norm(g, p) + 1e-6)
    return g * min(coef, 1.0)


def nonfinite_ok(s: Structure, g: np.ndarray) -> bool:
    """Every norm the run's clip_grad_norm_ computes is finite (torch's error_if_nonfinite raises where one is not)."""
    if not s.clip_per_parameter:
        return bool(np.isfinite(p_norm(g, s.clip_norm_type)))
    return all(np.isfinite(p_norm(g[sl], s.clip_norm_type)) for sl in layout_of(s.arch).slices.values())


def clip_gradient(s: Structure, g: np.ndarray, threshold) -> np.ndarray:
    """The run's clipping (:mod:`xreg.semantics.clipping`): clamp to [-V, V], or clip the norm of the whole
    gradient or of each parameter's part."""
    if s.clip == clipping.VALUE:
        return np.clip(g, -threshold, threshold)
    if not s.clip_per_parameter:
        return clip_grad_norm(g, threshold, s.clip_norm_type)
    out = g.copy()
    for sl in layout_of(s.arch).slices.values():
        out[sl] = clip_grad_norm(g[sl], threshold, s.clip_norm_type)
    return out


@functools.lru_cache(maxsize=64)
def scheduled_lrs(s: Structure, lr: float) -> tuple[float, ...]:
    """The lr after each of the run's scheduler calls: the schedule's twin of torch's arithmetic."""
    return tuple(schedules.lrs_of(s.schedule, dict(s.schedule_options), float(lr), s.calls))


@functools.lru_cache(maxsize=64)
def scheduled_momenta(s: Structure) -> tuple[float, ...]:
    """The momentum (or beta1) a cycling scheduler sets after each call: the twin of torch's arithmetic."""
    return tuple(schedules.momenta_of(s.schedule, dict(s.schedule_options), s.calls))


class State(NamedTuple):
    structure: Structure
    theta: np.ndarray  # flat parameters in the run's dtype
    optimizer: Any  # the optimizer's NumPy reference (its buffers are the optimizer state)
    t: int  # steps taken
    buffers: Mapping[str, np.ndarray] = {}  # batch norm's running statistics (the model's state), run dtype
    plateau: Any = None  # ReduceLROnPlateau's twin (stepped with each epoch's loss), else None


def init(s: Structure, hp: Mapping[str, Any], params0: Mapping[str, np.ndarray], buffers0: Mapping[str, np.ndarray] | None = None) -> State:
    dt = np.dtype(s.dtype)
    theta = layout_of(s.arch).flat(params0, dt)
    reference = optimizers.get(s.optimizer).reference(hp["options"], dict(s.flags), theta, layout_of(s.arch))
    buffers = {n: np.asarray(b, dt) for n, b in (models.initial_buffers(s.arch) if buffers0 is None else buffers0).items()}
    plateau = schedules.make_twin(s.schedule, dict(s.schedule_options), float(hp["lr"])) if schedules.reads_loss(s.schedule) else None
    return State(s, theta, reference, 0, buffers, plateau)


def _gradient(s: Structure, theta: np.ndarray, batch: Batch, buffers, dt) -> tuple[float, np.ndarray, dict]:
    """The step's data loss and gradient, and the moved buffers: one batch's, or an accumulated step's, each
    micro-batch's gradient (its own mean) in turn, times 1/K as torch's loss/K; the recorded loss is the
    micro-batches' mean."""
    layout = layout_of(s.arch)
    parts = batch.micro or (batch,)
    loss, g, moved = 0.0, np.zeros(layout.size, dt), dict(buffers)
    wj = dt.type(1.0 / len(parts))
    for b in parts:
        X, y = np.asarray(b.X, dt), np.asarray(b.y, dt)
        drop = None if b.drop is None else [np.asarray(d, dt) for d in b.drop]
        lj, grads, new = models.backward(s.arch, layout.tree(theta), X, y, np, buffers=moved, drop=drop, with_buffers=True)
        moved.update(new)
        g = layout.flat(grads, dt) if len(parts) == 1 else g + wj * layout.flat(grads, dt)
        loss += float(lj) / len(parts)
    return loss, g, moved


def _advance(state: State, batch: Batch, hp: Mapping[str, Any]) -> tuple[State, float, float]:
    """One update; the optimizer object is advanced in place. Returns the new state, batch loss, penalty."""
    s, dt = state.structure, np.dtype(state.structure.dtype)
    layout = layout_of(s.arch)
    theta, t, m = state.theta, state.t + 1, len(batch.y)
    pos = batch.count if s.schedule_every == "step" else batch.epoch
    lr = dt.type(state.plateau.lr if state.plateau is not None else scheduled_lrs(s, hp["lr"])[pos])
    if s.cycled:  # the reference's momentum (mu) or beta1 (b1) this step
        setattr(state.optimizer, "b1" if s.cycled == "betas" else "mu", scheduled_momenta(s)[pos])
    loss, g, moved = _gradient(s, theta, batch, state.buffers, dt)
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
            if s.clip_error and not nonfinite_ok(s, g):
                raise clipping.Stopped(float(loss), float(penalty))  # torch's error_if_nonfinite raises: the run ends here
            g = clip_gradient(s, g, dt.type(hp["clip_norm"]))
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
    return State(s, theta, state.optimizer, t, {**state.buffers, **moved}, state.plateau), float(loss), float(penalty)


def step(state: State, batch: Batch, hp: Mapping[str, Any]) -> State:
    """One update on one batch (pure: ``state`` and its optimizer buffers are not changed)."""
    check_steppable(state.structure)
    with np.errstate(all="ignore"):
        return _advance(state._replace(optimizer=copy.deepcopy(state.optimizer)), batch, hp)[0]


def params_of(state: State) -> dict[str, np.ndarray]:
    return {n: p.astype(np.float64) for n, p in layout_of(state.structure.arch).tree(state.theta).items()}


def buffers_of(state: State) -> dict[str, np.ndarray]:
    return {n: np.asarray(b, np.float64) for n, b in state.buffers.items()}


def metrics(arch: models.Architecture, params: Mapping[str, np.ndarray], X, y, buffers=None) -> tuple[float, float]:
    """Mean loss and accuracy (NaN for regression or no rows) of ``params`` on X, y, in eval mode (batch
    norm by its running statistics ``buffers``, no dropout)."""
    if not len(y):
        return math.nan, math.nan
    z = models.forward(arch, params, X, np, buffers=buffers, train=False)
    loss = float(np.sum(models.per_example_loss(arch.head, z, y, np, arch.loss)) / models.loss_normalizer(arch.loss, y, len(y), np))
    if not models.HEADS[arch.head].classification:
        return loss, math.nan
    return loss, float(np.mean(models.correct(arch.head, z, y, np)))


def train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    if spec.naive_layers:
        raise ValueError(f"Naive layers are flax ports (the jax backend); got naive_layers={spec.naive_layers!r}.")
    if spec.port != "exact":
        raise ValueError(f"The numpy backend writes the exact torch rules only; got port={spec.port!r}.")
    data.check_for_model(spec.model)
    s, hp = split(spec, data)
    dt = np.dtype(spec.dtype)
    plan = make_plan(spec, data.n_train, s.arch)
    X, y, Xt, yt = (np.asarray(a, dt) for a in (data.X_train, data.y_train, data.X_test, data.y_test))
    state = init(s, hp, plan.params0, plan.buffers0)
    layout = layout_of(s.arch)
    rows = plan.recorded(spec.record_every)
    hist = np.full((len(rows), layout.size), np.nan)
    hist[0] = state.theta
    bufs = {n: np.full((len(rows), *shape), np.nan) for n, shape in s.arch.buffer_shapes.items()}
    for n in bufs:
        bufs[n][0] = state.buffers[n]
    loss, pen = np.full(len(rows) - 1, np.nan), np.full(len(rows) - 1, np.nan)
    train_loss, train_acc, test_acc = (np.full(spec.epochs, np.nan) for _ in range(3))
    stopped = None  # the step torch's clip_grad_norm_ raises at (error_if_nonfinite), if any
    with np.errstate(all="ignore"):  # a diverging run is recorded, not raised
        for k, batch in enumerate(plan.data_batches(X, y)):
            row = int(np.searchsorted(rows, k))  # the row that holds the parameters before this step, if kept
            try:
                state, step_loss, step_pen = _advance(state, batch, hp)
            except clipping.Stopped as stop:  # torch's error_if_nonfinite raises at this step: the run ends
                if rows[row] == k:
                    loss[row], pen[row] = stop.loss, stop.penalty
                stopped = f"step {k + 1}: {clipping.STOPPED}"
                break
            if s.resume_at == k + 1:  # the state pickled and unpickled: parameters, the optimizer's buffers, the count
                state = pickle.loads(pickle.dumps(state))
            progress.tick(k + 1)
            if rows[row] == k:
                loss[row], pen[row] = step_loss, step_pen
            finite = bool(np.all(np.isfinite(state.theta)))
            after = int(np.searchsorted(rows, k + 1))  # the first kept row at or after this step
            if rows[after] == k + 1 or not finite:
                hist[after] = state.theta  # a divergence shows at the next kept row
                for n in bufs:
                    bufs[n][after] = state.buffers[n]
            if not finite:
                break
            if batch.epoch_end and state.plateau is not None:  # scheduler.step(epoch_loss): the twin, given the recorded loss
                state.plateau.step(metrics(s.arch, layout.tree(state.theta), X, y, state.buffers)[0])
            if batch.epoch_end and rows[after] == k + 1:  # an epoch's metrics where its parameters are kept
                params = layout.tree(state.theta)
                train_loss[batch.epoch], train_acc[batch.epoch] = metrics(s.arch, params, X, y, state.buffers)
                test_acc[batch.epoch] = metrics(s.arch, params, Xt, yt, state.buffers)[1]
    params = {n: hist[:, sl].reshape((-1, *layout.shapes[n])) for n, sl in layout.slices.items()}
    return make_trajectory(NAME, spec, params, buffers=bufs, loss=loss, penalty=pen, train_loss=train_loss, train_accuracy=train_acc,
                           test_accuracy=test_acc, steps_at=rows, meta={"numpy": np.__version__, **({"stopped": stopped} if stopped else {})})  # fmt: skip
