"""JAX + optax: a functional linear/logistic model; regularization is an explicit optax chain.

The chain is the semantics. For the exact port of ``torch.optim.<Opt>(weight_decay=lam)``::

    chain(
        [add_decayed_weights(lam/m_t, mask)]   # scratch: (sum_i grad_i + lam*w)/m, part of the gradient
        [torch_clip_grad_norm(M)]              # clip_grad_norm_ runs before torch adds weight decay
        [add_decayed_weights(lam, mask)]       # torch: coupled decay, g + lam*w, before any scaling
        <direction of the optimizer>           # e.g. trace(momentum), scale_by_adam(...)
        [add_decayed_weights(s, mask)]         # decoupled: -lr_t*(d + s*w), as optax.adamw
        scale_by_learning_rate(lr_t),          # lr_t from the shared per-epoch schedule
    )

``l2-loss`` adds ``lam/2*||w||^2`` to the loss and lets ``jax.grad`` differentiate it. ``mask`` keeps
the bias out when ``decay_bias`` is false. The whole run (all epochs and batches, plus the per-epoch
metrics) is one ``jax.jit``-compiled function built on ``lax.scan``.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

jax.config.update("jax_enable_x64", True)  # float64 runs need it; float32 runs stay float32

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from xreg import conventions, schedules  # noqa: E402
from xreg.backends import _record, naive_ports, torch_twins  # noqa: E402
from xreg.backends.naive_ports import Link  # noqa: E402
from xreg.plan import TrainingPlan, make_plan  # noqa: E402
from xreg.spec import Dataset, ExperimentSpec, Trajectory  # noqa: E402

NAME = "jax"


def lr_of_count(spec: ExperimentSpec, plan: TrainingPlan, dtype) -> Callable[[Any], Any]:
    """Optax schedule: the lr of update ``count`` (0-based) is the lr of epoch ``count // n_batches``."""
    per_epoch = schedules.lr_fn(spec.schedule, spec.schedule_options, spec.lr, jnp)
    nb = plan.n_batches
    return lambda count: jnp.asarray(per_epoch(count // nb), dtype)


def direction(spec: ExperimentSpec, lr: Callable) -> list[Link]:
    """The optimizer's own rule as optax links, returning the direction d (torch: w <- w - lr*d).

    Stock optax wherever it is exact; a torch twin (:mod:`torch_twins`) where it is not.
    """
    o = spec.options
    name = spec.optimizer
    if name == "sgd":
        mu, tau, nesterov = o["momentum"], o["dampening"], o["nesterov"]
        if mu == 0:
            return []
        if tau == 0:
            return [Link(f"trace(decay={mu}, nesterov={nesterov})", optax.trace(mu, nesterov))]
        return [
            Link(
                f"torch_twins.scale_by_torch_sgd_momentum({mu}, dampening={tau}, nesterov={nesterov})",
                torch_twins.scale_by_torch_sgd_momentum(mu, tau, nesterov),
            )
        ]
    if name in ("adam", "adamw"):
        (b1, b2), eps = o["betas"], o["eps"]
        if o["amsgrad"]:
            return [Link(f"torch_twins.scale_by_torch_amsgrad({b1}, {b2}, eps={eps})", torch_twins.scale_by_torch_amsgrad(b1, b2, eps))]
        return [Link(f"scale_by_adam(b1={b1}, b2={b2}, eps={eps})", optax.scale_by_adam(b1, b2, eps))]
    if name == "rmsprop":
        a, eps, mu = o["alpha"], o["eps"], o["momentum"]
        if o["centered"]:
            links = [Link(f"scale_by_stddev(decay={a}, eps={eps}, eps_in_sqrt=False)", optax.scale_by_stddev(a, eps, eps_in_sqrt=False))]
        else:
            links = [Link(f"scale_by_rms(decay={a}, eps={eps}, eps_in_sqrt=False)", optax.scale_by_rms(a, eps, eps_in_sqrt=False))]
        if mu > 0:  # torch's buffer holds g/avg without lr: trace before the lr, not after
            links.append(Link(f"trace(decay={mu})", optax.trace(mu)))
        return links
    if name == "adagrad":
        S0, eps, decay = o["initial_accumulator_value"], o["eps"], o["lr_decay"]
        links = [Link(f"torch_twins.scale_by_torch_adagrad(S0={S0}, eps={eps})", torch_twins.scale_by_torch_adagrad(S0, eps))]
        if decay:
            links.append(Link(f"scale_by_schedule(1/(1 + count*{decay}))", optax.scale_by_schedule(lambda c: 1 / (1 + c * decay))))
        return links
    if name == "adamax":
        (b1, b2), eps = o["betas"], o["eps"]
        return [Link(f"scale_by_adamax(b1={b1}, b2={b2}, eps={eps})", optax.scale_by_adamax(b1, b2, eps))]
    if name == "nadam":
        (b1, b2), eps, psi = o["betas"], o["eps"], o["momentum_decay"]
        return [Link(f"torch_twins.scale_by_torch_nadam({b1}, {b2}, eps={eps}, momentum_decay={psi})", torch_twins.scale_by_torch_nadam(b1, b2, eps, psi))]
    if name == "radam":
        (b1, b2), eps = o["betas"], o["eps"]
        return [Link(f"torch_twins.scale_by_torch_radam({b1}, {b2}, eps={eps})", torch_twins.scale_by_torch_radam(b1, b2, eps))]
    if name == "adadelta":
        rho, eps = o["rho"], o["eps"]
        return [Link(f"scale_by_adadelta(rho={rho}, eps={eps})", optax.scale_by_adadelta(rho, eps))]
    if name == "asgd":  # w <- w - eta_t*(g + lambd*w): lambd decays every parameter, eta replaces lr
        lambd, alpha = o["lambd"], o["alpha"]
        eta = torch_twins.asgd_eta(lr, lambd, alpha)
        return [
            Link(f"add_decayed_weights({lambd})", optax.add_decayed_weights(lambd)),
            Link(f"scale_by_schedule(eta_t/lr_t, alpha={alpha})", optax.scale_by_schedule(lambda c: eta(c) / lr(c))),
        ]
    raise AssertionError(name)


def exact_chain(spec: ExperimentSpec, plan: TrainingPlan, dtype) -> list[Link]:
    mask = {"weight": True, "bias": spec.decay_bias}
    mask_text = "" if spec.decay_bias else ", mask={'bias': False}"
    lr = lr_of_count(spec, plan, dtype)
    links: list[Link] = []
    if spec.convention == "scratch":
        sizes = jnp.asarray(plan.batch_sizes, dtype)
        nb, lam = plan.n_batches, spec.lam
        text = f"add_decayed_weights({lam}/m_t{mask_text})"
        links.append(Link(text, optax.add_decayed_weights(lambda c: lam / sizes[c % nb], mask)))
    if spec.clip_norm is not None:
        links.append(Link(f"torch_twins.torch_clip_grad_norm({spec.clip_norm})", torch_twins.torch_clip_grad_norm(spec.clip_norm)))
    if spec.convention == "torch":
        links.append(Link(f"add_decayed_weights({spec.lam}{mask_text})", optax.add_decayed_weights(spec.lam, mask)))
    links += direction(spec, lr)
    s = conventions.decoupled_rate(spec.convention, spec.lam, spec.lr, spec.decoupled_scale)
    if s:
        links.append(Link(f"add_decayed_weights({s:.6g}{mask_text})", optax.add_decayed_weights(s, mask)))
    sched = "" if spec.schedule == "constant" else f" * {spec.schedule} schedule"
    links.append(Link(f"scale_by_learning_rate({spec.lr}{sched})", optax.scale_by_learning_rate(lr)))
    return links


def build_chain(spec: ExperimentSpec, plan: TrainingPlan, dtype=jnp.float64) -> list[Link]:
    """The chain for ``spec.port``: 'exact' (reproduces torch) or 'naive' (the obvious alias)."""
    if spec.port == "naive":
        return [naive_ports.naive_link(spec, lr_of_count(spec, plan, dtype))]
    return exact_chain(spec, plan, dtype)


def chain_text(links: list[Link]) -> str:
    if len(links) == 1:
        return links[0].text
    return "chain(" + ", ".join(link.text for link in links) + ")"


def _per_example_loss(model: str, z, y):
    if model == "logistic":
        return optax.sigmoid_binary_cross_entropy(z, y)  # log-sigmoid form: stable, no log(0)
    return (z - y) ** 2


def make_run(spec: ExperimentSpec, plan: TrainingPlan, tx: optax.GradientTransformation, dtype):
    """Build the whole training run as one function of arrays, to be jit-compiled."""
    mask = {"weight": 1.0, "bias": 1.0 if spec.decay_bias else 0.0}
    in_loss = spec.convention == "l2-loss"

    def sq_norm(params):
        return sum(mask[k] * jnp.sum(params[k] ** 2) for k in params)

    def data_loss(params, X, y, valid, m):
        z = X @ params["weight"] + params["bias"][0]
        return jnp.sum(jnp.where(valid, _per_example_loss(spec.model, z, y), 0.0)) / m

    def objective(params, X, y, valid, m):
        dl = data_loss(params, X, y, valid, m)
        sq = sq_norm(params)
        total = dl + conventions.l2_penalty(spec.lam, sq) if in_loss else dl
        return total, (dl, sq)

    def accuracy(params, X, y):
        if X.shape[0] == 0:
            return jnp.asarray(jnp.nan, dtype)
        z = X @ params["weight"] + params["bias"][0]
        return jnp.mean(((z > 0) == (y == 1)).astype(dtype))

    def run(params0, X, y, Xt, yt, idx, valid):
        def step(carry, xs):
            params, state = carry
            rows, ok = xs
            m = jnp.sum(ok).astype(dtype)
            grads, (dl, sq) = jax.grad(objective, has_aux=True)(params, X[rows], y[rows], ok, m)
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            pen = conventions.penalty(spec.convention, spec.lam, m, sq)
            return (params, state), (params, dl, pen)

        _, (hist, loss, pen) = jax.lax.scan(step, (params0, tx.init(params0)), (idx, valid))
        ends = jax.tree.map(lambda h: h[plan.n_batches - 1 :: plan.n_batches], hist)
        full = jnp.ones(X.shape[0], bool)
        train_loss = jax.vmap(lambda p: data_loss(p, X, y, full, jnp.asarray(X.shape[0], dtype)))(ends)
        if spec.model == "logistic":
            train_acc = jax.vmap(lambda p: accuracy(p, X, y))(ends)
            test_acc = jax.vmap(lambda p: accuracy(p, Xt, yt))(ends)
        else:
            train_acc = test_acc = jnp.full(spec.epochs, jnp.nan, dtype)
        return hist, loss, pen, train_loss, train_acc, test_acc

    return run


def train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    data.check_for_model(spec.model)
    dtype = jnp.dtype(spec.dtype)
    plan = make_plan(spec, data.n_train, data.n_features)
    links = build_chain(spec, plan, dtype)
    tx = optax.chain(*(link.transform for link in links))
    cast = lambda a: jnp.asarray(np.asarray(a), dtype)  # noqa: E731
    params0 = {"weight": cast(plan.weight0), "bias": cast(plan.bias0)}
    idx, valid = plan.padded_indices()
    run = jax.jit(make_run(spec, plan, tx, dtype))
    hist, loss, pen, train_loss, train_acc, test_acc = run(
        params0, cast(data.X_train), cast(data.y_train), cast(data.X_test), cast(data.y_test), idx, valid
    )
    weight = np.concatenate([np.asarray(params0["weight"])[None], np.asarray(hist["weight"])])
    bias = np.concatenate([np.asarray(params0["bias"])[None], np.asarray(hist["bias"])])
    return _record.trajectory(
        NAME,
        spec,
        weight=weight,
        bias=bias,
        loss=loss,
        penalty=pen,
        train_loss=train_loss,
        train_accuracy=train_acc,
        test_accuracy=test_acc,
        meta={
            "jax": jax.__version__,
            "optax": optax.__version__,
            "device": str(jax.devices()[0].platform),
            "chain": chain_text(links),
        },
    )
