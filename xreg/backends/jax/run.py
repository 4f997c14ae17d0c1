"""JAX + optax: the functional model of :mod:`xreg.models`; regularization is an explicit optax chain.

The program is built once per :class:`~xreg.core.structure.Structure` and jit-compiled; the numeric
hyperparameters (lr, decay strengths, betas, ...) are traced inputs, so two runs that differ only in
them share one compilation. Each step builds the chain of :mod:`chain` from the traced values and this
step's lr and batch size; the whole run is one ``lax.scan`` of that step. float64 is switched on only
inside this backend's calls (``jax.enable_x64``), never for the whole process.

Contract: ``init(structure, hparams, params0[, buffers0]) -> State``; ``step(state, batch, hparams) -> State``
(pure); ``train(spec, data) -> Trajectory`` scans the same step.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from types import SimpleNamespace
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xreg import models
from xreg.core.checks import XregInputError
from xreg.backends.jax import chain
from xreg.core import progress, recipe
from xreg.core.plan import Batch, make_plan
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory, make_trajectory
from xreg.core.structure import Structure, check_steppable, group_strengths, split
from xreg import schedules
from xreg.semantics import accumulation, conventions

NAME = "jax"
COMPILED = True  # a run is one compiled computation (no Python between its steps to interrupt)
ROWS_FIRST = 2**15  # batches at least this tall take a one-output layer's weight gradient in one row pass
RECORD_BATCH = 64  # steps whose loss is computed together after the scan (bounds the gathered rows held)
TRACES: Counter = Counter()  # structure -> times its run was traced (= compiled); read by the tests


class State(NamedTuple):
    structure: Structure
    params: Any  # name -> array
    opt_state: Any
    buffers: Any = {}  # batch norm's running statistics, name -> array


def cast_hparams(hp: Mapping[str, Any], dtype) -> dict[str, Any]:
    """Optimizer options and the clip norm in the run's dtype (as torch applies Python floats to its
    tensors); lr and decay strengths stay float64, and what is derived from them is cast where used.
    ``wide_options`` keeps the options in float64 too: torch computes its scalar coefficients (bias
    corrections, NAdam's mu, RAdam's rho, ASGD's eta) in Python floats, and the twins do the same."""
    wide = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
    narrow = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    return {
        "lr": wide(hp["lr"]),
        "decay": {k: wide(v) for k, v in hp["decay"].items()},
        "options": jax.tree.map(narrow, dict(hp["options"])),
        "wide_options": jax.tree.map(wide, dict(hp["options"])),
        "clip_norm": narrow(hp["clip_norm"]),
    }


def _per_example(head: str, z, y, loss: models.Loss = models.Loss()):
    if not loss.plain:  # torch's weighted or smoothed cross entropy, or a naive form (xreg.models.per_example_loss)
        return models.per_example_loss(head, z, y, jnp, loss)
    if head == "bce":
        return optax.sigmoid_binary_cross_entropy(z[:, 0], y)  # log-sigmoid form: stable, no log(0)
    if head == "ce":
        return optax.softmax_cross_entropy_with_integer_labels(z, y.astype(jnp.int32))
    return models.per_example_loss(head, z, y, jnp)


class _Program:
    """The pieces of one structure's training, for ``jax.jit``: the objective and its gradient (the data term
    by hand-written backpropagation for dense stacks, by ``jax.grad`` of the flax.nnx modules of
    :mod:`nets` for layered ones; a penalty in the loss by autodiff), one step of the optax chain, and the
    drivers that scan the steps (every step recorded, every ``every`` steps, or only the end).

    The scan carries ``(params, buffers, opt_state)``: ``buffers`` are batch norm's running statistics
    (empty for the other models); ``drop`` (per hidden block, (steps, B, H)) the steps' dropout multipliers."""

    def __init__(self, s: Structure):
        self.s, self.dtype = s, jnp.dtype(s.dtype)
        self.in_loss = next((st for st in recipe.build(s) if st.name == "penalty"), None)
        self.net, self.flax = None, None  # the flax.nnx modules of a layered model, and flax's version
        if s.arch.layered:
            from xreg.backends.jax import nets

            self.net, self.flax = nets.net(s.arch, s.dtype), nets.FLAX_VERSION
        self.reads_loss = schedules.reads_loss(s.schedule)  # ReduceLROnPlateau: its state rides in the carry's opt_state

    def plateau(self, hp) -> dict[str, Any]:
        """ReduceLROnPlateau's plateau_init, plateau_step and plateau_lr (:func:`xreg.schedules.code`: xreg's twin, or
        the naive optax.contrib port), with the traced base lr bound."""
        s = self.s
        return schedules.defined(schedules.code(s.schedule, dict(s.schedule_options), s.schedule_context, s.naive_schedule), hp["lr"])

    def plateau_end(self, carry, count, X, y, hp):
        """The carry after the step ``count``: at an epoch's end the scheduler's state stepped with the epoch's loss
        (the whole training set's mean data loss in eval mode at the parameters after the step: the recorded one)."""
        params, buffers, (opt_state, plateau) = carry
        fns = self.plateau(hp)

        def stepped(state):
            n = jnp.asarray(X.shape[0], self.dtype)
            return fns["plateau_step"](state, self.data_loss(params, buffers, X, y, jnp.ones(X.shape[0], bool), n, train=False)[0])

        end = jnp.mod(count + 1, self.s.batches) == 0
        return params, buffers, (opt_state, jax.lax.cond(end, stepped, lambda state: state, plateau))

    def lr_at(self, hp, count):
        """The lr of the step after ``count`` steps: the schedule's optax code (:func:`xreg.schedules.code`: exact,
        or naive with the run's naive codes) executed with the traced base lr and called as optax calls it, with
        the step count (float64; int32, optax's own count, under the naive ``int32-count``)."""
        s = self.s
        count = self.schedule_count(count)
        lines = schedules.code(s.schedule, dict(s.schedule_options), s.schedule_context, s.naive_schedule)
        dtype = jnp.int32 if schedules.INT32_COUNT in s.naive_schedule else jnp.float64
        return schedules.execute(lines, hp["lr"])(jnp.asarray(count, dtype))

    def schedule_count(self, count):
        """The count the schedule reads: the step's, or (the naive ``resume-schedule``) counted again from the resume."""
        if "resume-schedule" in self.s.naive_resume:
            return jnp.where(count >= self.s.resume_at, count - self.s.resume_at, count)
        return count

    def scheduled(self, hp, count):
        """``hp`` with the momentum (Adam's beta1) a cycling scheduler sets at ``count`` (torch's cycle_momentum)."""
        s, key = self.s, self.s.cycled
        if not key or schedules.MOMENTUM_FIXED in s.naive_schedule:
            return hp  # (the naive port: optax's schedule sets the lr only; the optimizer keeps its own momentum)
        lines = schedules.momentum_code(s.schedule, dict(s.schedule_options), s.schedule_context)
        m = schedules.execute(lines, hp["lr"], "momentum")(jnp.asarray(self.schedule_count(count), jnp.float64))

        def put(opts, v):
            return {**opts, key: (v, opts[key][1]) if key == "betas" else v}

        return {**hp, "options": put(hp["options"], m.astype(self.dtype)), "wide_options": put(hp["wide_options"], m)}

    def logits(self, params, buffers, X, drop=None, valid=None, train=True):
        """(logits, moved buffers) of the rows of X: train mode (the batch's statistics, the step's dropout)
        or eval mode (running statistics, no dropout)."""
        if self.net is None:
            return models.forward(self.s.arch, params, X, jnp), buffers
        return self.net.apply(params, buffers, X, drop, valid, train)

    def data_loss(self, params, buffers, X, y, valid, m, drop=None, train=True):
        z, moved = self.logits(params, buffers, X, drop, valid, train)
        arch = self.s.arch
        return _masked_sum(_per_example(arch.head, z, y, arch.loss), valid) / models.loss_normalizer(arch.loss, y, m, jnp, valid), moved

    def tx_for(self, hp, lr_t, m):
        return chain.to_optax(chain.links(self.s, hp, lr_t, m))

    def regularizer(self, params, m, hp):
        """The penalty the recipe puts in the loss (0 without one), and the recorded penalty term."""
        sqs = [(lam, sum(jnp.sum(params[n] ** 2) for n in names)) for names, lam in group_strengths(self.s, hp)]
        total = jnp.zeros([], self.dtype)
        if self.in_loss is not None:
            for lam, sq in sqs:
                c = conventions.coefficient(self.in_loss.coefficient, lam, m, hp["lr"]).astype(self.dtype)
                total = total + conventions.l2_penalty(c, sq)
        pen = sum((conventions.penalty(self.s.convention, lam, m, sq) for lam, sq in sqs), jnp.zeros([], jnp.float64))
        return total, pen

    def gradient(self, params, buffers, X, y, valid, m, hp, drop=None, batched=False):
        """The gradient of the objective and the moved buffers: for a dense stack the data term by
        hand-written backpropagation (XLA compiles its few matrix products much better than autodiff's
        graph; equal to ``jax.grad`` to round-off, tested), for a layered one by ``jax.grad`` of the flax
        modules; the penalty term, if any, by autodiff."""
        if self.net is None:
            per = lambda z, y_: _per_example(self.s.arch.head, z, y_, self.s.arch.loss)  # noqa: E731
            rows_first = not batched and X.shape[0] >= ROWS_FIRST  # measured: the row pass wins on tall X only
            dl, grads = models.backward(self.s.arch, params, X, y, jnp, valid, m, per, rows_first=rows_first)
            moved = buffers
        else:
            (dl, moved), grads = jax.value_and_grad(self.data_loss, has_aux=True)(params, buffers, X, y, valid, m, drop)
        pgrads, pen = jax.grad(self.regularizer, has_aux=True)(params, m, hp)
        if self.in_loss is not None:
            grads = jax.tree.map(jnp.add, grads, pgrads)
        return grads, (dl, pen), moved

    def objective(self, params, buffers, X, y, valid, m, hp, drop=None):
        """The same objective for ``jax.grad``: the reference the hand-written gradient is tested against."""
        penalty, pen = self.regularizer(params, m, hp)
        dl, _ = self.data_loss(params, buffers, X, y, valid, m, drop)
        return dl + penalty, (dl, pen)

    def init(self, params0, hp):
        """The chain's state; with ReduceLROnPlateau, (the chain's state, the scheduler's)."""
        chain_state = self.tx_for(hp, hp["lr"].astype(self.dtype), jnp.ones([], self.dtype)).init(params0)
        return (chain_state, self.plateau(hp)["plateau_init"](hp["lr"])) if self.reads_loss else chain_state

    def one_step(self, params, buffers, opt_state, X, y, valid, count, hp, m=None, drop=None, batched=False):
        hp = self.scheduled(hp, count)
        m = (jnp.sum(valid) if m is None else m).astype(self.dtype)
        grads, _, buffers = self.gradient(params, buffers, X, y, valid, m, hp, drop, batched)  # the loss is recorded apart
        return self._updated(params, buffers, opt_state, grads, count, hp, m)

    def _updated(self, params, buffers, opt_state, grads, count, hp, m):
        """The chain's update of ``grads`` at the step after ``count`` steps: (params, buffers, opt_state)."""
        if self.reads_loss:  # the lr the scheduler's state holds (stepped at the last epoch's end)
            opt_state, plateau = opt_state
            lr_t = jnp.asarray(self.plateau(hp)["plateau_lr"](plateau), jnp.float64).astype(self.dtype)
        else:
            lr_t = jnp.asarray(self.lr_at(hp, count), jnp.float64).astype(self.dtype)
        updates, opt_state = self.tx_for(hp, lr_t, m).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), buffers, (opt_state, plateau) if self.reads_loss else opt_state

    def accumulated_step(self, params, buffers, opt_state, X, y, rows, ok, ms, count, hp, drop, batched=False):
        """One optimizer step of K micro-batches (``rows``, ``ok``: (K, B); ``ms``: (K,)): each micro-batch's
        gradient in turn (batch norm's buffers carried from one to the next, as torch's K forward passes move
        them), weighted 1/K (torch's loss/K; the naive codes' weights, :mod:`xreg.semantics.accumulation`),
        then one update of the chain."""
        hp = self.scheduled(hp, count)
        w = accumulation.weights(self.s.naive_accumulate, ms.astype(self.dtype), jnp)

        def micro(carry, xs):
            total, bufs = carry
            r, o, mj, wj, dr = xs
            g, _, bufs = self.gradient(params, bufs, X[r], y[r], o, mj.astype(self.dtype), hp, dr or None, batched)
            return (jax.tree.map(lambda a, b: a + wj * b, total, g), bufs), None

        zero = jax.tree.map(jnp.zeros_like, params)
        (grads, buffers), _ = jax.lax.scan(micro, (zero, buffers), (rows, ok, ms, w, drop))
        return self._updated(params, buffers, opt_state, grads, count, hp, jnp.sum(ms).astype(self.dtype))

    def resumed(self, carry, count, hp):
        """The carry at the resumed step (``count == resume_at``) under the naive resume codes: the optax state
        rebuilt fresh, or its step counts set back to 0 (JAX's whole state is this carry: the exact resume keeps it)."""
        params, buffers, opt_state = carry
        opt_state, plateau = opt_state if self.reads_loss else (opt_state, None)
        at = count == self.s.resume_at
        fresh = lambda new, old: jax.tree.map(lambda f, o: jnp.where(at, f, o), new, old)  # noqa: E731
        if "resume-fresh-optimizer" in self.s.naive_resume:
            opt_state = fresh(self.init(params, hp)[0] if self.reads_loss else self.init(params, hp), opt_state)
        elif "resume-step-count" in self.s.naive_resume:
            def restart(path, v):
                named = getattr(path[-1], "name", getattr(path[-1], "key", None)) if path else None
                return jnp.where(at, jnp.zeros_like(v), v) if named == "count" else v

            opt_state = jax.tree_util.tree_map_with_path(restart, opt_state)
        if self.reads_loss and "resume-schedule" in self.s.naive_resume:  # a new scheduler on the loaded optimizer: its lr, no best
            fns = self.plateau(hp)
            plateau = fresh(fns["plateau_init"](fns["plateau_lr"](plateau)), plateau)
        return params, buffers, (opt_state, plateau) if self.reads_loss else opt_state

    def _body(self, X, y, hp, batched=False):
        """One scanned step: ``(params, buffers, opt_state)`` and the step's ``(rows, valid, m, count, drop)``
        (accumulated: rows and valid (K, B), m (K,), drop (K, B, H) per block)."""

        def body(carry, xs):
            rows, ok, m, count, drop = xs
            if self.s.naive_resume:
                carry = self.resumed(carry, count, hp)
            if self.s.accumulate > 1:
                carry = self.accumulated_step(*carry, X, y, rows, ok, m, count, hp, drop, batched)
            else:
                Xb, yb = (X, y) if rows is None else (X[rows], y[rows])
                carry = self.one_step(*carry, Xb, yb, ok, count, hp, m, drop or None, batched)
            return (self.plateau_end(carry, count, X, y, hp) if self.reads_loss else carry), None

        return body

    def records(self, prev, hp, X, y, idx, valid, ms, drop):
        """Each step's batch loss and penalty at the parameters before it (train mode, the step's dropout),
        computed after the scan from the recorded parameters in one batched pass (the scan only updates).
        ``prev``: the (params, buffers) rows before each step."""

        def one(p, b, rows, ok, m, dr):
            m = m.astype(self.dtype)
            if self.s.accumulate > 1:  # the micro-batches' mean loss (each in train mode, its own statistics)
                each = jax.vmap(lambda r, o, mj, d: self.data_loss(p, b, X[r], y[r], o, mj, d or None)[0])(rows, ok, m, dr)
                return jnp.mean(each), self.regularizer(p, jnp.sum(m), hp)[1]
            Xb, yb = (X, y) if rows is None else (X[rows], y[rows])
            return self.data_loss(p, b, Xb, yb, ok, m, dr or None)[0], self.regularizer(p, m, hp)[1]

        if idx is None and not drop:
            return jax.vmap(lambda p, b, m: one(p, b, None, None, m, ()))(*prev, ms)
        return jax.lax.map(lambda a: one(*a), (*prev, idx, valid, ms, drop), batch_size=RECORD_BATCH)

    def run(self, start, hp, X, y, Xt, yt, idx, valid, ms, counts, drop, ends):
        """Every step (scan), then the per-epoch metrics at the parameters after each epoch's last step.
        ``start``: (params0, buffers0).

        ``idx``/``valid`` None: every step is the whole of X in file order (full batch, no shuffle), and
        the step reads X as it is, with no gather and no mask.
        """
        TRACES[self.s] += 1  # runs once per compilation
        body = self._body(X, y, hp)

        def kept(carry, xs):
            carry, _ = body(carry, xs)
            return carry, carry[:2]

        _, hist = jax.lax.scan(kept, (*start, self.init(start[0], hp)), (idx, valid, ms, counts, drop))
        with_start = lambda s0, h: jnp.concatenate([s0[None], h])  # noqa: E731
        if idx is None and not drop:  # every step is an epoch on all rows: the loss before step e+1 is epoch e's training loss
            every = jax.tree.map(with_start, start, hist)
            loss, pen = self.records(every, hp, X, y, None, None, jnp.concatenate([ms, ms[-1:]]), drop)
            if self.net is None:
                _, train_acc, test_acc = self.metrics(hist, X, y, Xt, yt, with_loss=False)
                return hist, loss[:-1], pen[:-1], loss[1:], train_acc, test_acc
            return hist, loss[:-1], pen[:-1], *self.metrics(hist, X, y, Xt, yt)  # eval mode differs from train mode
        prev = jax.tree.map(lambda s0, h: jnp.concatenate([s0[None], h[:-1]]), start, hist)
        loss, pen = self.records(prev, hp, X, y, idx, valid, ms, drop)
        return (hist, loss, pen, *self.metrics(jax.tree.map(lambda h: h[ends], hist), X, y, Xt, yt))

    def run_every(self, start, hp, X, y, Xt, yt, idx, valid, ms, counts, drop, rec, at, every):
        """The run keeping the parameters every ``every`` steps and after the last (``record_every``): an
        outer scan over chunks of ``every`` steps keeps one row per chunk, so memory grows with the kept
        rows, not the steps. ``rec``: the step indices whose batch loss is kept (the kept rows but the
        last); ``at``: the kept rows that end an epoch (their per-epoch metrics)."""
        TRACES[self.s] += 1
        steps = counts.shape[0]
        full, tail = divmod(steps, every)
        body = self._body(X, y, hp)

        def chunk(carry, xs):
            carry, _ = jax.lax.scan(body, carry, xs)
            return carry, carry[:2]

        xs = (idx, valid, ms, counts, drop)
        head = jax.tree.map(lambda a: a[: full * every].reshape(full, every, *a.shape[1:]), xs)
        carry, kept = jax.lax.scan(chunk, (*start, self.init(start[0], hp)), head)
        parts = [jax.tree.map(lambda p: p[None], start), kept]
        if tail:
            carry, _ = jax.lax.scan(body, carry, jax.tree.map(lambda a: a[full * every :], xs))
            parts.append(jax.tree.map(lambda p: p[None], carry[:2]))
        rows = jax.tree.map(lambda *p: jnp.concatenate(p), *parts)
        prev = jax.tree.map(lambda p: p[:-1], rows)
        pick = (lambda a: None if a is None else a[rec])  # noqa: E731
        loss, pen = self.records(prev, hp, X, y, pick(idx), pick(valid), ms[rec], tuple(d[rec] for d in drop))
        return (rows, loss, pen, *self.metrics(jax.tree.map(lambda p: p[at], rows), X, y, Xt, yt))

    def fit(self, start, hp, X, y, Xt, yt, idx, valid, ms, counts, drop, batched=False):
        """The run with nothing recorded along the way: the final parameters (and buffers) and the metrics at them
        (what a sweep keeps of each grid point; the scan carries only the optimizer state).
        ``batched``: traced under vmap (a sweep), which wants the gradient's matrix-product form."""
        TRACES[self.s] += 1
        body = self._body(X, y, hp, batched)
        (final, buffers, _), _ = jax.lax.scan(body, (*start, self.init(start[0], hp)), (idx, valid, ms, counts, drop))
        ends = jax.tree.map(lambda p: p[None], (final, buffers))
        return {**final, **buffers}, *(v[0] for v in self.metrics(ends, X, y, Xt, yt))  # buffers: batch norm's, by name

    def metrics(self, ends, X, y, Xt, yt, with_loss=True):
        """Mean loss and accuracies at the (params, buffers) rows ``ends``, in eval mode."""
        full = jnp.ones(X.shape[0], bool)
        n = jnp.asarray(X.shape[0], self.dtype)
        eval_loss = lambda p, b: self.data_loss(p, b, X, y, full, n, train=False)[0]  # noqa: E731
        train_loss = jax.vmap(eval_loss)(*ends) if with_loss else None

        def accuracy(p, b, A, t):
            if A.shape[0] == 0 or not models.HEADS[self.s.arch.head].classification:
                return jnp.asarray(jnp.nan, self.dtype)
            z, _ = self.logits(p, b, A, train=False)
            acc = jnp.mean(models.correct(self.s.arch.head, z, t, jnp).astype(self.dtype))
            return jnp.where(jnp.all(jnp.isfinite(z)), acc, jnp.nan)  # a non-finite model has no accuracy

        return (train_loss, jax.vmap(lambda p, b: accuracy(p, b, X, y))(*ends),
                jax.vmap(lambda p, b: accuracy(p, b, Xt, yt))(*ends))  # fmt: skip


@functools.lru_cache(maxsize=128)
def program(s: Structure) -> SimpleNamespace:
    """The jit-compiled pieces of one structure: init, step, the scanned run and the per-epoch metrics."""
    p = _Program(s)
    return SimpleNamespace(init=jax.jit(p.init), step=jax.jit(p.one_step), run=jax.jit(p.run), fit=p.fit, dtype=p.dtype, flax=p.flax,
                           accumulated_step=jax.jit(p.accumulated_step),
                           run_every=jax.jit(p.run_every, static_argnames="every"),
                           gradient=jax.jit(p.gradient), autodiff=jax.jit(jax.grad(p.objective, has_aux=True)))


def _masked_sum(v, valid):
    return jnp.sum(v) if valid is None else jnp.sum(jnp.where(valid, v, 0.0))


def _inputs(plan, data: Dataset, dtype, put=jnp.asarray) -> tuple:
    """What every run of a plan reads besides the parameters and hyperparameters, each through ``put``
    (the default device, ``device_put``, or a sharding): the data in the run's dtype, the batch rows and
    their mask (None for a full batch in file order), the rows of each step, its count (steps before it), and its dropout
    multipliers per hidden block (an empty tuple without dropout)."""
    idx, valid = (None, None) if plan.in_file_order else plan.padded_indices()
    ms, drop = plan.rows_of_step(), plan.drop
    if plan.accumulate > 1:  # an optimizer step's K micro-batches side by side
        K = plan.accumulate
        group = lambda a: a.reshape(plan.steps, K, *a.shape[1:])  # noqa: E731
        idx, valid, ms, drop = group(idx), group(valid), group(ms), tuple(group(d) for d in drop)
    cast = lambda a: put(np.asarray(a, dtype))  # noqa: E731
    return (cast(data.X_train), cast(data.y_train), cast(data.X_test), cast(data.y_test),
            None if idx is None else put(idx), None if valid is None else put(valid),
            put(ms), put(np.arange(plan.steps, dtype=np.float64)), tuple(cast(d) for d in drop))  # fmt: skip


def _tree(params0: Mapping[str, np.ndarray], dtype) -> dict[str, Any]:
    return {n: jnp.asarray(np.asarray(p), dtype) for n, p in params0.items()}


def init(s: Structure, hp: Mapping[str, Any], params0: Mapping[str, np.ndarray], buffers0: Mapping[str, np.ndarray] | None = None) -> State:
    with jax.enable_x64(True):
        prog = program(s)
        params = _tree(params0, prog.dtype)
        buffers = _tree(models.initial_buffers(s.arch) if buffers0 is None else buffers0, prog.dtype)
        return State(s, params, prog.init(params, cast_hparams(hp, prog.dtype)), buffers)


def step(state: State, batch: Batch, hp: Mapping[str, Any]) -> State:
    """One update on one batch (pure: ``state`` is not changed)."""
    check_steppable(state.structure)
    with jax.enable_x64(True):
        prog = program(state.structure)
        cast = lambda a: jnp.asarray(np.asarray(a), prog.dtype)  # noqa: E731
        if batch.micro:  # an accumulated step: its micro-batches' rows of batch.X, padded side by side
            sizes = [len(b.y) for b in batch.micro]
            B, starts = max(sizes), np.cumsum([0, *sizes[:-1]])
            rows = np.array([[st + min(i, n - 1) for i in range(B)] for st, n in zip(starts, sizes)])
            ok = np.array([[i < n for i in range(B)] for n in sizes])
            drops = () if batch.micro[0].drop is None else tuple(
                cast(np.stack([np.pad(b.drop[h], ((0, B - len(b.y)), (0, 0))) for b in batch.micro])) for h in range(len(batch.micro[0].drop)))
            params, buffers, opt_state = prog.accumulated_step(state.params, state.buffers, state.opt_state, cast(batch.X), cast(batch.y),
                                                               jnp.asarray(rows), jnp.asarray(ok), cast(sizes), float(batch.count),
                                                               cast_hparams(hp, prog.dtype), drops)  # fmt: skip
            return State(state.structure, params, opt_state, buffers)
        valid = jnp.ones(len(batch.y), bool)
        drop = None if batch.drop is None else tuple(cast(d) for d in batch.drop)
        params, buffers, opt_state = prog.step(state.params, state.buffers, state.opt_state, cast(batch.X), cast(batch.y),
                                               valid, float(batch.count), cast_hparams(hp, prog.dtype), None, drop)  # fmt: skip
        return State(state.structure, params, opt_state, buffers)


def params_of(state: State) -> dict[str, np.ndarray]:
    return {n: np.asarray(p, np.float64) for n, p in state.params.items()}


def buffers_of(state: State) -> dict[str, np.ndarray]:
    return {n: np.asarray(b, np.float64) for n, b in state.buffers.items()}


def chain_text(s: Structure, hp: Mapping[str, Any]) -> str:
    """The chain a run of ``s`` executes, printed with the values of ``hp``."""
    return chain.chain_text(chain.links(s, hp, hp["lr"], 1))


def train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    data.check_for_model(spec.model)
    s, hp = split(spec, data)
    plan = make_plan(spec, data.n_train, s.arch)
    found = devices(spec.device)  # JAX can start, and has the device asked for
    place = jax.default_device(found[0]) if spec.device else contextlib.nullcontext()
    with jax.enable_x64(True), place:
        prog = program(s)
        start = (_tree(plan.params0, prog.dtype), _tree(plan.buffers0, prog.dtype))
        args = (start, cast_hparams(hp, prog.dtype), *_inputs(plan, data, prog.dtype))
        kept = plan.recorded(spec.record_every)
        if spec.record_every == 1:
            hist, loss, pen, train_loss, train_acc, test_acc = prog.run(*args, plan.epoch_ends())
            rows = jax.tree.map(lambda s0, h: np.concatenate([np.asarray(s0)[None], np.asarray(h)]), start, hist)
        else:
            ends = plan.epoch_ends() + 1  # steps done after each epoch
            shown = np.flatnonzero(np.isin(ends, kept))  # epochs whose parameters are kept
            rows, loss, pen, *shown_metrics = prog.run_every(*args, kept[:-1], np.searchsorted(kept, ends[shown]),
                                                             every=spec.record_every)  # fmt: skip
            train_loss, train_acc, test_acc = (np.full(spec.epochs, np.nan) for _ in range(3))
            for full, part in zip((train_loss, train_acc, test_acc), shown_metrics):
                full[shown] = np.asarray(part)
    progress.tick(int(kept[-1]))  # one compiled scan: every step is done at once
    params, buffers = ({n: np.asarray(tree[n]) for n in tree} for tree in rows)
    return make_trajectory(
        NAME,
        spec,
        {n: params[n] for n in s.arch.names},
        buffers={n: buffers[n] for n in s.arch.buffer_shapes},
        loss=loss,
        penalty=pen,
        train_loss=train_loss,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        steps_at=kept,
        meta={
            "jax": jax.__version__,
            "optax": optax.__version__,
            "device": str(jax.devices(spec.device)[0].platform),
            "chain": chain_text(s, hp),
            **({"flax": prog.flax} if prog.flax else {}),
            "recipe": recipe.text(recipe.build(s)),
        },
    )


# ---- sweeps: one vmapped, jitted computation per structure, sharded over the devices ------------------
def check_device(device: str | None) -> None:
    """An input error now, before any run, where JAX cannot start (a JAX_PLATFORMS it has no plugin for)
    or ``device`` names a platform JAX does not have."""
    devices(device)


def devices(platform: str | None = None) -> list:
    """Every JAX device of ``platform`` (all processes' devices in a multi-host run); a clear error if none."""
    import os

    try:
        default = jax.default_backend()
    except (RuntimeError, AssertionError, ValueError) as exc:  # jax asserts when JAX_PLATFORMS names nothing it can start
        asked = os.environ.get("JAX_PLATFORMS", "")
        why = f"JAX_PLATFORMS={asked!r} names no platform this JAX can start (is its plugin installed?)" if asked else str(exc)
        from xreg.backends import BackendUnavailable

        raise BackendUnavailable(f"JAX cannot start: {why}; unset JAX_PLATFORMS or set it to 'cpu'") from None
    try:
        return list(jax.devices(platform))
    except RuntimeError:
        raise XregInputError(f"--device {platform}: JAX has no {platform} device here (it has {default}).") from None


CHUNK = 1024  # grid points vmapped together; a device runs its share of the grid one chunk after another
CHUNK_VALUES = 2**27  # activations a chunk may hold at once (points x batch rows x widest layer): ~1 GB in float64


def chunk_size(n: int, per_point: int = 1) -> int:
    """Points per vmapped chunk for a group of ``n`` points: the power of two >= n, at most CHUNK and at
    most what keeps ``per_point`` activation values per point within CHUNK_VALUES. It depends on the
    grid and the problem alone, never on the device count, so every device count runs the same chunk
    program and gives the same numbers, bit for bit."""
    cap = max(1, CHUNK_VALUES // max(1, per_point))
    return min(CHUNK, 1 << (cap.bit_length() - 1), 1 << max(0, (n - 1).bit_length()))


@functools.lru_cache(maxsize=64)
def _grid_fit(s: Structure, mesh):
    """``fit`` vmapped over a chunk of grid points, mapped over the chunks a device holds, on every
    device of ``mesh`` at once (``shard_map``: hyperparameters split along 'grid', data replicated).
    jit traces it again for another chunk size or batch layout, as for any other input shapes."""
    from jax.sharding import PartitionSpec as P

    batched = jax.vmap(functools.partial(program(s).fit, batched=True), in_axes=(None, 0) + (None,) * 9)

    def local(params0, hp, *rest):  # hp leaves: (chunks on this device, chunk)
        return jax.lax.map(lambda h: batched(params0, h, *rest), hp)

    in_specs = (P(), P("grid")) + (P(),) * 9
    return jax.jit(jax.shard_map(local, mesh=mesh, in_specs=in_specs, out_specs=P("grid"), check_vma=False))


def _global(a: np.ndarray, sharding) -> jax.Array:
    """A global array from the same host array on every process (each process fills its own shards)."""
    a = np.asarray(a)
    return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])


def sweep(specs: list[ExperimentSpec], data: Dataset, platform: str | None = None) -> dict[str, Any]:
    """Train every spec of a grid (they differ only in numeric hyperparameters) and return, stacked in
    the order of ``specs``: ``final_params`` (name -> (N, *shape)), ``final_loss``, ``train_accuracy``,
    ``test_accuracy`` (N,), the ``devices`` used and ``compilations``.

    Points are grouped by structure (a sweep that crosses momentum=0 has two); each group is one
    ``jit(vmap(fit))`` call whose grid axis is sharded over every device (``NamedSharding`` on a 1-D
    ``Mesh``), padded to a multiple of the device count by repeating its last point.
    """
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    base = specs[0]
    data.check_for_model(base.model)
    splits = [split(sp, data) for sp in specs]
    plan = make_plan(base, data.n_train, splits[0][0].arch)
    devs = devices(platform)
    mesh = Mesh(np.array(devs), ("grid",))
    on_grid, replicated = NamedSharding(mesh, PartitionSpec("grid")), NamedSharding(mesh, PartitionSpec())
    groups: dict[Structure, list[int]] = {}
    for i, (s, _) in enumerate(splits):
        groups.setdefault(s, []).append(i)
    n = len(specs)
    out: dict[str, Any] = {}
    traces = sum(TRACES.values())
    with jax.enable_x64(True):
        for s, members in groups.items():
            prog = program(s)
            chunk = chunk_size(len(members), max(plan.batch_sizes) * s.arch.values_per_row)
            chunks = -(-len(members) // chunk)
            pad = members + [members[-1]] * ((chunks + (-chunks % len(devs))) * chunk - len(members))
            stacked = jax.tree.map(lambda *leaves: np.asarray(leaves, np.float64), *[splits[i][1] for i in pad])
            wide = {"lr": stacked["lr"], "decay": stacked["decay"], "wide_options": stacked["options"]}  # as cast_hparams: float64
            narrow = jax.tree.map(lambda a: a.astype(prog.dtype), {"options": stacked["options"], "clip_norm": stacked["clip_norm"]})
            hp = jax.tree.map(lambda a: _global(a.reshape(-1, chunk), on_grid), {**wide, **narrow})
            everywhere = lambda a: _global(a, replicated)  # noqa: E731
            start = jax.tree.map(lambda p: everywhere(np.asarray(p, prog.dtype)), (dict(plan.params0), dict(plan.buffers0)))
            result = _grid_fit(s, mesh)(start, hp, *_inputs(plan, data, prog.dtype, everywhere))
            if jax.process_count() > 1:
                result = multihost_utils.process_allgather(result, tiled=True)
            flat = lambda a: np.asarray(a, np.float64).reshape(-1, *np.shape(a)[2:])[: len(members)]  # noqa: E731
            final, loss, train_acc, test_acc = jax.tree.map(flat, result)
            for key, value in (("final_loss", loss), ("train_accuracy", train_acc), ("test_accuracy", test_acc)):
                out.setdefault(key, np.full(n, np.nan))[members] = value
            params = out.setdefault("final_params", {k: np.full((n, *np.shape(v)), np.nan) for k, v in plan.params0.items()})
            for k in params:
                params[k][members] = final[k]
            buffers = out.setdefault("final_buffers", {k: np.full((n, *np.shape(v)), np.nan) for k, v in plan.buffers0.items()})
            for k in buffers:
                buffers[k][members] = final[k]
    out["devices"] = [str(d) for d in devs]
    out["structures"] = len(groups)
    out["compilations"] = sum(TRACES.values()) - traces
    return out


def fitter(spec: ExperimentSpec, data: Dataset):
    """``go(spec_like) -> final params``: runs of ``spec``'s structure on ``data`` with nothing recorded
    along the way, the data placed on the device once and the program compiled on the first call. For
    timing the compiled path alone (``xreg bench``); ``spec_like`` may change the numeric hyperparameters."""
    s, _ = split(spec, data)
    plan = make_plan(spec, data.n_train, s.arch)
    with jax.enable_x64(True):
        prog = program(s)
        fit = jax.jit(prog.fit)
        fixed = _inputs(plan, data, prog.dtype, jax.device_put)
        start = (_tree(plan.params0, prog.dtype), _tree(plan.buffers0, prog.dtype))

    def go(other: ExperimentSpec) -> dict[str, np.ndarray]:
        s2, hp = split(other, data)
        if s2 != s:
            raise ValueError("fitter: the spec's structure changed; make a new fitter.")
        with jax.enable_x64(True):
            final = fit(start, cast_hparams(hp, prog.dtype), *fixed)[0]
            return {n: np.asarray(p) for n, p in jax.block_until_ready(final).items()}

    return go
