"""Plain user training loops, the way people write them (torch, optax, NumPy from scratch), each
recorded with xreg.record: the pairs ``xreg diagnose`` is tested on. Nothing here runs xreg's backends."""

from __future__ import annotations

import numpy as np

from xreg.record import Recorder, TorchRecorder


def problem(data, rows=200, seed=0):
    """Logistic regression on the first ``rows`` rows of a dataset, with a shared random start."""
    X, y = np.asarray(data.X_train[:rows], float), np.asarray(data.y_train[:rows], float)
    rng = np.random.default_rng(seed)
    w0, b0 = 0.3 * rng.standard_normal((1, X.shape[1])), 0.3 * rng.standard_normal(1)
    return X, y, w0, b0


class Both:
    """Muon's translation is a list of two optimizers, stepped together as a user's loop steps them."""

    def __init__(self, opts):
        self.opts, self.param_groups = opts, [g for o in opts for g in o.param_groups]

    def zero_grad(self):
        for o in self.opts:
            o.zero_grad()

    def step(self):
        for o in self.opts:
            o.step()

    def register_step_pre_hook(self, hook):  # the recorder's: before the first, after the last
        return self.opts[0].register_step_pre_hook(lambda opt, *a: hook(self, *a))

    def register_step_post_hook(self, hook):
        return self.opts[-1].register_step_post_hook(lambda opt, *a: hook(self, *a))


def torch_loop(X, y, w0, b0, make_opt, steps, *, dtype="float64", batch=None, sched=None, per_epoch=True,
               reduction="mean", groups=None):  # fmt: skip
    """``model = nn.Linear``; BCE with logits; ``make_opt(params_or_groups)``; optional minibatches in
    order and a scheduler ``sched(opt)`` stepped per epoch or per batch."""
    import torch

    dt = getattr(torch, dtype)
    model = torch.nn.Linear(X.shape[1], 1).to(dt)
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(w0))
        model.bias.copy_(torch.as_tensor(b0))
    params = groups(model) if groups else model.parameters()
    opt = make_opt(params)
    sch = sched(opt) if sched else None
    rec = TorchRecorder(model, opt)
    Xt, yt = torch.as_tensor(X, dtype=dt), torch.as_tensor(y, dtype=dt)
    m = batch or len(y)
    per = len(y) // m
    for step in range(steps):
        i = (step % per) * m
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(Xt[i : i + m])[:, 0], yt[i : i + m], reduction=reduction)
        loss.backward()
        rec.log_loss(loss.item())
        opt.step()
        if sch is not None and (not per_epoch or (step + 1) % per == 0):
            sch.step()
    rec.remove()
    return rec.run()


def optax_loop(X, y, w0, b0, tx, steps, *, dtype="float64", lr=None):
    """A flax-style parameter tree ``{"dense": {"kernel": (d, 1), "bias": (1,)}}`` trained with ``tx``;
    ``lr`` (a number, or a function of the step from 0) is what the loop records as each step's lr."""
    import jax
    import jax.numpy as jnp
    import optax

    with jax.enable_x64(dtype == "float64"):
        dt = jnp.dtype(dtype)
        params = {"dense": {"kernel": jnp.asarray(w0.T, dt), "bias": jnp.asarray(b0, dt)}}
        Xj, yj = jnp.asarray(X, dt), jnp.asarray(y, dt)

        def loss_fn(p):
            z = (Xj @ p["dense"]["kernel"])[:, 0] + p["dense"]["bias"][0]
            return jnp.mean(optax.sigmoid_binary_cross_entropy(z, yj))

        state = tx.init(params)
        rec = Recorder(meta={"framework": "optax"})
        rec.log(params)
        step = jax.jit(lambda p, s: _optax_step(loss_fn, tx, p, s))
        for k in range(steps):
            params, state, loss, grads = step(params, state)
            rec.log(params, grads=grads, lr=lr(k) if callable(lr) else lr, loss=loss)
    return rec.run()


def _optax_step(loss_fn, tx, params, state):
    import jax
    import optax

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss, grads


def scratch_loop(X, y, w0, b0, lr, lam, steps, *, bias_sign=1.0):
    """The classic from-scratch logistic regression: beta = [bias, w]; accumulate (p - y)*x over the rows,
    add lam*beta for every parameter, divide by n. ``bias_sign=-1`` plants a wrong-sign bias gradient."""
    n = len(y)
    Xb = np.hstack([np.ones((n, 1)), X])
    beta = np.concatenate([b0, w0[0]])
    rec = Recorder(meta={"framework": "numpy", "note": "scratch lam/m"})
    rec.log({"weight": beta[None, 1:], "bias": beta[:1]})
    for _ in range(steps):
        p = 1 / (1 + np.exp(-Xb @ beta))
        data_grad = np.zeros_like(beta)
        for i in range(n):
            data_grad += (p[i] - y[i]) * Xb[i]
        data_grad[0] *= bias_sign
        grad = (data_grad + lam * beta) / n
        beta = beta - lr * grad
        mean_grad = data_grad / n  # the loss's own gradient (mean over the rows), what the step used
        rec.log({"weight": beta[None, 1:], "bias": beta[:1]}, grads={"weight": mean_grad[None, 1:], "bias": mean_grad[:1]}, lr=lr)
    return rec.run()


def clipped_loop(X, y, w0, b0, lr, wd, steps, *, decay_first: bool, max_norm=0.05):
    """torch SGD with the gradient clipped to ``max_norm``: the decay added after the clipping (torch's
    ``weight_decay`` inside ``step()``), or, ``decay_first``, added to ``p.grad`` by hand before
    ``clip_grad_norm_`` (and ``weight_decay=0``)."""
    import torch

    model = torch.nn.Linear(X.shape[1], 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.as_tensor(w0))
        model.bias.copy_(torch.as_tensor(b0))
    opt = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=0.0 if decay_first else wd)
    rec = TorchRecorder(model, opt)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(Xt)[:, 0], yt)
        loss.backward()
        if decay_first:
            with torch.no_grad():
                for p in model.parameters():
                    p.grad.add_(p, alpha=wd)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        opt.step()
    rec.remove()
    return rec.run()
