"""JAX + optax: the functional model of :mod:`xreg.models`; regularization is an explicit optax chain.

The program is built once per :class:`~xreg.core.structure.Structure` and jit-compiled; the numeric
hyperparameters (lr, decay strengths, betas, ...) are traced inputs, so two runs that differ only in
them share one compilation. Each step builds the chain of :mod:`chain` from the traced values and this
step's lr and batch size; the whole run is one ``lax.scan`` of that step. float64 is switched on only
inside this backend's calls (``jax.enable_x64``), never for the whole process.

Contract: ``init(structure, hparams, params0) -> State``; ``step(state, batch, hparams) -> State``
(pure); ``train(spec, data) -> Trajectory`` scans the same step.
"""

from __future__ import annotations

import functools
from collections import Counter
from types import SimpleNamespace
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from xreg import models
from xreg.backends.jax import chain
from xreg.core import recipe
from xreg.core.plan import Batch, make_plan
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory, make_trajectory
from xreg.core.structure import Structure, group_strengths, split
from xreg.semantics import conventions, schedules

NAME = "jax"
TRACES: Counter = Counter()  # structure -> times its run was traced (= compiled); read by the tests


class State(NamedTuple):
    structure: Structure
    params: Any  # name -> array
    opt_state: Any


def cast_hparams(hp: Mapping[str, Any], dtype) -> dict[str, Any]:
    """Optimizer options and the clip norm in the run's dtype (as torch applies Python floats to its
    tensors); lr and decay strengths stay float64, and what is derived from them is cast where used."""
    wide = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
    narrow = lambda v: jnp.asarray(v, dtype)  # noqa: E731
    return {
        "lr": wide(hp["lr"]),
        "decay": {k: wide(v) for k, v in hp["decay"].items()},
        "options": jax.tree.map(narrow, dict(hp["options"])),
        "clip_norm": narrow(hp["clip_norm"]),
    }


def _per_example(head: str, z, y):
    if head == "bce":
        return optax.sigmoid_binary_cross_entropy(z[:, 0], y)  # log-sigmoid form: stable, no log(0)
    if head == "ce":
        return optax.softmax_cross_entropy_with_integer_labels(z, y.astype(jnp.int32))
    return models.per_example_loss(head, z, y, jnp)


@functools.lru_cache(maxsize=128)
def program(s: Structure) -> SimpleNamespace:
    """The jit-compiled pieces of one structure: init, step, the scanned run and the per-epoch metrics."""
    dtype = jnp.dtype(s.dtype)
    steps = recipe.build(s)
    in_loss = next((st for st in steps if st.name == "penalty"), None)
    conv = s.convention
    lr_of_epoch = lambda lr: schedules.lr_fn(s.schedule, dict(s.schedule_options), lr, jnp)  # noqa: E731

    def data_loss(params, X, y, valid, m):
        z = models.forward(s.arch, params, X, jnp)
        return jnp.sum(jnp.where(valid, _per_example(s.arch.head, z, y), 0.0)) / m

    def tx_for(hp, lr_t, m):
        return chain.to_optax(chain.links(s, hp, lr_t, m))

    def objective(params, X, y, valid, m, hp):
        dl = data_loss(params, X, y, valid, m)
        total = dl
        sqs = [(lam, sum(jnp.sum(params[n] ** 2) for n in names)) for names, lam in group_strengths(s, hp)]
        if in_loss is not None:
            for lam, sq in sqs:
                c = conventions.coefficient(in_loss.coefficient, lam, m, hp["lr"]).astype(dtype)
                total = total + conventions.l2_penalty(c, sq)
        pen = sum((conventions.penalty(conv, lam, m, sq) for lam, sq in sqs), jnp.zeros([], jnp.float64))
        return total, (dl, pen)

    def init(params0, hp):
        return tx_for(hp, hp["lr"].astype(dtype), jnp.ones([], dtype)).init(params0)

    def one_step(params, opt_state, X, y, valid, epoch, hp):
        m = jnp.sum(valid).astype(dtype)
        lr_t = jnp.asarray(lr_of_epoch(hp["lr"])(epoch), jnp.float64).astype(dtype)
        grads, (dl, pen) = jax.grad(objective, has_aux=True)(params, X, y, valid, m, hp)
        updates, opt_state = tx_for(hp, lr_t, m).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, dl, pen

    def run(params0, hp, X, y, Xt, yt, idx, valid, epochs, ends):
        """Every step (scan), then the per-epoch metrics at the parameters after each epoch's last step."""
        TRACES[s] += 1  # runs once per compilation

        def body(carry, xs):
            params, opt_state = carry
            rows, ok, epoch = xs
            params, opt_state, dl, pen = one_step(params, opt_state, X[rows], y[rows], ok, epoch, hp)
            return (params, opt_state), (params, dl, pen)

        _, (hist, loss, pen) = jax.lax.scan(body, (params0, init(params0, hp)), (idx, valid, epochs))
        return (hist, loss, pen, *metrics(jax.tree.map(lambda h: h[ends], hist), X, y, Xt, yt))

    def metrics(ends, X, y, Xt, yt):
        full = jnp.ones(X.shape[0], bool)
        train_loss = jax.vmap(lambda p: data_loss(p, X, y, full, jnp.asarray(X.shape[0], dtype)))(ends)

        def accuracy(p, A, b):
            if A.shape[0] == 0 or not models.HEADS[s.arch.head].classification:
                return jnp.asarray(jnp.nan, dtype)
            return jnp.mean(models.correct(s.arch.head, models.forward(s.arch, p, A, jnp), b, jnp).astype(dtype))

        return train_loss, jax.vmap(lambda p: accuracy(p, X, y))(ends), jax.vmap(lambda p: accuracy(p, Xt, yt))(ends)

    return SimpleNamespace(init=jax.jit(init), step=jax.jit(one_step), run=jax.jit(run), dtype=dtype)


def _tree(params0: Mapping[str, np.ndarray], dtype) -> dict[str, Any]:
    return {n: jnp.asarray(np.asarray(p), dtype) for n, p in params0.items()}


def init(s: Structure, hp: Mapping[str, Any], params0: Mapping[str, np.ndarray]) -> State:
    with jax.enable_x64(True):
        prog = program(s)
        params = _tree(params0, prog.dtype)
        return State(s, params, prog.init(params, cast_hparams(hp, prog.dtype)))


def step(state: State, batch: Batch, hp: Mapping[str, Any]) -> State:
    """One update on one batch (pure: ``state`` is not changed)."""
    with jax.enable_x64(True):
        prog = program(state.structure)
        cast = lambda a: jnp.asarray(np.asarray(a), prog.dtype)  # noqa: E731
        valid = jnp.ones(len(batch.y), bool)
        params, opt_state, _, _ = prog.step(state.params, state.opt_state, cast(batch.X), cast(batch.y), valid,
                                            batch.epoch, cast_hparams(hp, prog.dtype))  # fmt: skip
        return State(state.structure, params, opt_state)


def params_of(state: State) -> dict[str, np.ndarray]:
    return {n: np.asarray(p, np.float64) for n, p in state.params.items()}


def chain_text(s: Structure, hp: Mapping[str, Any]) -> str:
    """The chain a run of ``s`` executes, printed with the values of ``hp``."""
    return chain.chain_text(chain.links(s, hp, hp["lr"], 1))


def train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    data.check_for_model(spec.model)
    s, hp = split(spec, data)
    plan = make_plan(spec, data.n_train, s.arch)
    with jax.enable_x64(True):
        prog = program(s)
        cast = lambda a: jnp.asarray(np.asarray(a), prog.dtype)  # noqa: E731
        params0 = _tree(plan.params0, prog.dtype)
        idx, valid = plan.padded_indices()
        hist, loss, pen, train_loss, train_acc, test_acc = prog.run(
            params0, cast_hparams(hp, prog.dtype), cast(data.X_train), cast(data.y_train), cast(data.X_test),
            cast(data.y_test), idx, valid, plan.epoch_of_step(), plan.epoch_ends())
        params = {n: np.concatenate([np.asarray(params0[n])[None], np.asarray(hist[n])]) for n in s.arch.names}
    return make_trajectory(
        NAME,
        spec,
        params,
        loss=loss,
        penalty=pen,
        train_loss=train_loss,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        meta={
            "jax": jax.__version__,
            "optax": optax.__version__,
            "device": str(jax.devices()[0].platform),
            "chain": chain_text(s, hp),
            "recipe": recipe.text(recipe.build(s)),
        },
    )
