"""Assertions for your CI, on chex: does my port follow the reference to round-off?

    from xreg.testing import assert_trajectories_close
    assert_trajectories_close("torch.npz", "optax.npz")   # files from xreg.record, or the runs themselves

The tolerance is xreg's (:mod:`xreg.analysis.agreement`): at step k the largest parameter difference must
stay within ``16 * eps(dtype) * sum_{j<=k}(|theta_j| + |theta_j - theta_{j-1}|)``. A failure names the
first step past it, the parameter and the gap, and, for recorded runs, the cause ``xreg diagnose``
finds (:mod:`xreg.analysis.diagnose`).

    from xreg.testing import assert_optax_matches_torch
    assert_optax_matches_torch(optax.adamw(1e-3, weight_decay=1e-2),
                               lambda model: torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2))

trains one of xreg's models twice, in plain torch and in plain optax, from the same start on the same
rows, and asserts the two runs agree to round-off.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Mapping

import chex
import numpy as np

from xreg.analysis.agreement import first_past, tolerance
from xreg.core.spec import Trajectory
from xreg.io import trajfile


def _params(run: Any) -> dict[str, np.ndarray]:
    if isinstance(run, (str, Path)):
        run = trajfile.load(run)
    if isinstance(run, (trajfile.RecordedRun, Trajectory)):
        return {n: np.asarray(p, np.float64) for n, p in run.params.items()}
    if isinstance(run, Mapping):
        return {str(n): np.asarray(p, np.float64) for n, p in run.items()}
    raise TypeError(f"Expected a trajectory file, a RecordedRun, a Trajectory or a name -> array mapping; got {type(run).__name__}.")


def _cause(a: Any, b: Any) -> str:
    """The diagnosis of two recorded runs, as a sentence (empty where they are not recorded runs)."""
    runs = []
    for r in (a, b):
        if isinstance(r, (str, Path)):
            r = trajfile.load(r)
        if not isinstance(r, trajfile.RecordedRun):
            return ""
        runs.append(r)
    try:
        from xreg.analysis.diagnose import diagnose

        d = diagnose(*runs)
    except Exception as exc:  # noqa: BLE001 (the assertion stands without a diagnosis)
        return f" (no diagnosis: {exc})"
    if d.cause is None:
        return ""
    fix = "; ".join(f"fix in {side.upper()}: {text}" for side, text in d.fix.items())
    return f" Diagnosed cause: {d.cause} (stage {d.stage}): {d.evidence}" + (f". {fix}" if fix else "")


def assert_trajectories_close(a: Any, b: Any, *, dtype: str = "float64") -> None:
    """Raise ``AssertionError`` at the first step where ``a`` and ``b`` part by more than round-off.

    ``a``, ``b``: trajectory files, :class:`~xreg.io.trajfile.RecordedRun`, :class:`~xreg.core.spec.Trajectory`
    or ``{name: (T+1, *shape) array}``; the same names and shapes (chex checks them). ``dtype``: the
    precision the runs computed in (the tolerance scales with its epsilon).
    """
    if dtype not in ("float64", "float32", "float16"):
        raise ValueError(f"dtype must be 'float64', 'float32' or 'float16' (the precision the runs computed in); got {dtype!r}.")
    pa, pb = _params(a), _params(b)
    if _recorded(a) and _recorded(b):  # two recorded runs: their names and layouts aligned as diagnose aligns them
        pa, pb = _aligned(a, b)
    for side, p in (("a", pa), ("b", pb)):
        if not p:
            raise ValueError(f"Run {side} holds no parameters.")
        flat = [n for n, v in p.items() if v.ndim == 0]
        if flat:
            raise ValueError(f"Run {side}: '{flat[0]}' is one number; each parameter is a (steps + 1, *shape) array.")
    if sorted(pa) != sorted(pb):
        raise AssertionError(f"The runs name different parameters: {sorted(pa)} and {sorted(pb)}.")
    pb = {n: pb[n] for n in pa}
    chex.assert_trees_all_equal_shapes(pa, pb)
    names = list(pa)
    rows = next(iter(pa.values())).shape[0]
    flat_a = np.concatenate([pa[n].reshape(rows, -1) for n in names], axis=1)
    flat_b = np.concatenate([pb[n].reshape(rows, -1) for n in names], axis=1)
    with np.errstate(invalid="ignore"):  # the same NaN or infinity in both runs is no gap (both diverged alike)
        gaps = {n: np.max(np.where(_same(pa[n], pb[n]), 0.0, np.abs(pa[n] - pb[n])).reshape(rows, -1), axis=1, initial=0.0)
                for n in names}  # fmt: skip
    worst = np.max(np.stack(list(gaps.values())), axis=0)
    tol = tolerance(dtype, flat_a, flat_b)
    k = first_past(worst, tol)  # NaN counts as past
    if k is not None:
        name = max(names, key=lambda n: np.nan_to_num(gaps[n][k], nan=np.inf))
        agree = f"up to step {k - 1} they agree" if k else "they start from different parameters"
        raise AssertionError(
            f"The trajectories part at step {k}: parameter '{name}' differs by {gaps[name][k]:.3e} "
            f"(round-off tolerance {tol[k]:.3e}, {dtype}); {agree}." + _cause(a, b)
        )


def _same(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x == y) | (np.isnan(x) & np.isnan(y))


def _recorded(run: Any) -> bool:
    return isinstance(run, (str, Path, trajfile.RecordedRun))


def _aligned(a: Any, b: Any) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Two recorded runs with B's parameters renamed and laid out as A's (xreg.analysis.diagnose.align)."""
    from xreg.analysis.diagnose import _permute, align

    from xreg.core.checks import XregInputError

    ra, rb = (trajfile.load(r) if isinstance(r, (str, Path)) else r for r in (a, b))
    try:
        al = align(ra, rb)
    except XregInputError as exc:  # runs that cannot be paired are not close
        raise AssertionError(f"The runs' parameters cannot be paired: {exc}") from None
    pa = {n: np.asarray(p, np.float64) for n, p in ra.params.items()}
    return pa, {n: np.asarray(_permute(rb.params[al.b_name[n]], al.perm[n]), np.float64) for n in al.names}


def _torch_run(arch: Any, plan: Any, data: Any, batches: list, make_torch_optimizer: Any, dtype: str) -> Any:
    """The plain torch loop (xreg's module, torch's loss class), recorded."""
    import torch

    from xreg.backends.torch.run import build_module, loss_fn
    from xreg.record import TorchRecorder

    tdt = getattr(torch, dtype)
    module = build_module(arch, tdt)
    with torch.no_grad():
        for n, p in module.named_parameters():
            p.copy_(torch.as_tensor(plan.params0[n]))
    opt = make_torch_optimizer(module)
    rec = TorchRecorder(module, opt)
    X, y = torch.as_tensor(data.X_train, dtype=tdt), torch.as_tensor(data.y_train, dtype=tdt)
    lossf = loss_fn(arch.head)
    for rows in batches:
        idx = torch.from_numpy(np.array(rows))  # the plan's rows are read-only: a copy, as the torch backend takes
        opt.zero_grad()
        loss = lossf(module(X[idx]), y[idx])
        loss.backward()
        rec.log_loss(loss.item())
        opt.step()
    rec.remove()
    return rec.run()


def _optax_run(arch: Any, plan: Any, data: Any, batches: list, tx: Any, dtype: str) -> Any:
    """The plain optax loop (``jax.value_and_grad`` of xreg's forward pass), recorded."""
    import jax
    import jax.numpy as jnp
    import optax

    from xreg import models
    from xreg.record import Recorder

    with jax.enable_x64(dtype == "float64"):
        params = {n: jnp.asarray(p, dtype) for n, p in plan.params0.items()}
        Xj, yj = jnp.asarray(data.X_train, dtype), jnp.asarray(data.y_train, dtype)

        @jax.jit
        def step(params, state, Xb, yb):
            def loss(p):
                return jnp.mean(models.per_example_loss(arch.head, models.forward(arch, p, Xb, jnp), yb, jnp))

            value, grads = jax.value_and_grad(loss)(params)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state, value, grads

        state = tx.init(params)
        rec = Recorder(meta={"framework": "optax"})
        rec.log(params)
        for rows in batches:
            params, state, value, grads = step(params, state, Xj[rows], yj[rows])
            rec.log(params, grads=grads, loss=value)
    return rec.run()


def assert_optax_matches_torch(tx: Any, make_torch_optimizer: Any, *, model: str = "logistic", steps: int = 20, data: Any = None,
                               hidden: int | None = None, batch_size: int | None = None, dtype: str = "float64", seed: int = 0) -> None:  # fmt: skip
    """Train ``model`` (xreg's: linear, logistic, softmax or mlp; torch's parameter names) for ``steps``
    steps in plain torch with ``make_torch_optimizer(module)`` and in plain optax with ``tx``, from the
    same start (torch's nn.Linear init from ``seed``) on the same rows (``data``: an
    :class:`xreg.core.spec.Dataset`, default the embedded one; full batch or in-order batches of
    ``batch_size``), and assert the runs agree to round-off; a failure says the step, the parameter,
    the gap and the diagnosed cause."""
    from xreg.core.plan import make_plan
    from xreg.core.spec import ExperimentSpec
    from xreg.core.structure import architecture
    from xreg.io.data import default_dataset

    data = default_dataset() if data is None else data
    per_epoch = -(-data.n_train // (batch_size or data.n_train))
    spec = ExperimentSpec(model=model, hidden=hidden, init="torch", seed=seed, epochs=-(-steps // per_epoch),
                          batch_size=batch_size, dtype=dtype)  # fmt: skip
    arch = architecture(spec, data)
    plan = make_plan(spec, data.n_train, arch)
    batches = [rows for _, rows in itertools.islice(plan.batches(), steps)]  # in order, the short last batch kept
    torch_run = _torch_run(arch, plan, data, batches, make_torch_optimizer, dtype)
    assert_trajectories_close(torch_run, _optax_run(arch, plan, data, batches, tx, dtype), dtype=dtype)
