"""Optax ``GradientTransformation``s for the torch.optim rules that stock optax cannot express.

Hyperparameters may be Python floats or traced JAX scalars. Each returns a *direction* ``d`` (torch then does ``w <- w - lr*d``), so it composes as
``chain([add_decayed_weights(lam)], twin, [add_decayed_weights(s)], scale_by_learning_rate(lr))``.
``t`` is the 1-based step; every state keeps its own ``count = t - 1``.

Why stock optax is not enough (checked against optax 0.2.8 and torch 2.13):

* SGD with ``dampening``: torch's first buffer is ``b1 = g1`` undamped, then ``b <- mu*b + (1-tau)*g``;
  ``optax.trace`` has no dampening and ``chain(scale(1-tau), trace(mu))`` damps ``b1`` too.
* AMSGrad: torch keeps ``max`` of the *raw* ``v`` and divides by the current ``sqrt(1-b2^t)``;
  ``optax.scale_by_amsgrad`` takes the max of the bias-corrected ``v_hat``.
* Adagrad: torch ``g/(sqrt(S)+eps)`` (eps outside, ``S0`` settable, default 0); optax
  ``scale_by_rss`` is ``rsqrt(S + eps)`` with ``S0=0.1``.
* NAdam: torch's momentum schedule ``mu_t = b1*(1 - 0.5*0.96^(t*psi))``; optax's nesterov Adam is
  Dozat's form (torch's only as psi -> inf).
* RAdam: torch puts eps on the raw ``sqrt(v)`` and switches on ``rho_t > 5``; optax uses
  ``sqrt(v_hat)+eps`` and ``rho_t >= 5``.
* ASGD: optax has none; torch's ``eta`` is a state updated from each step's lr.
* ``clip_grad_norm_``: torch scales by ``min(1, M/(||g||+1e-6))``; ``optax.clip_by_global_norm``
  has no 1e-6.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class MomentState(NamedTuple):
    count: jax.Array
    m: Any
    v: Any


class AMSGradState(NamedTuple):
    count: jax.Array
    m: Any
    v: Any
    vmax: Any


class NAdamState(NamedTuple):
    count: jax.Array
    m: Any
    v: Any
    mu_product: jax.Array


class BufferState(NamedTuple):
    count: jax.Array
    buf: Any


def _zeros(params):
    return jax.tree.map(jnp.zeros_like, params)


def _count():
    return jnp.zeros([], jnp.int32)


def _moments(state, updates, b1, b2):
    """torch's ``m <- lerp(m, g, 1-b1)`` and ``v <- b2*v + (1-b2)*g^2``, each Python-float coefficient
    (``1-b1``, ``b2``, ``1-b2``, computed wide) rounded once to the parameters' dtype, as torch applies it."""
    dt = _dtype(updates)
    w1, k2, w2 = _narrow(1 - _wide(b1), dt), _narrow(b2, dt), _narrow(1 - _wide(b2), dt)
    m = jax.tree.map(lambda m, g: m + w1 * (g - m), state.m, updates)
    v = jax.tree.map(lambda v, g: k2 * v + w2 * g * g, state.v, updates)
    return m, v


def _dtype(tree):
    return jax.tree.leaves(tree)[0].dtype


def _wide(x):
    """``x`` in the widest float available (float64 inside xreg's runs, which enable x64): torch computes
    its scalar coefficients (bias corrections, NAdam's mu, RAdam's rho, ASGD's eta) in Python floats."""
    return jnp.asarray(x, jax.dtypes.canonicalize_dtype(jnp.float64))


def _narrow(x, dtype):
    """A wide scalar rounded once to the parameters' dtype (what torch does to a Python float it applies)."""
    return _wide(x).astype(dtype)


def _step_t(count):
    """The 1-based step t, wide."""
    return _wide(count + 1)


def torch_clip_grad_norm(max_norm) -> optax.GradientTransformation:
    """``g * min(1, max_norm/(||g||_2 + 1e-6))`` over all leaves (torch.nn.utils.clip_grad_norm_)."""

    def update(updates, state, params=None):
        norm = optax.tree.norm(updates)
        coef = jnp.minimum(max_norm / (norm + 1e-6), 1.0)
        return jax.tree.map(lambda g: g * coef.astype(g.dtype), updates), state

    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)


def scale_by_torch_sgd_momentum(momentum, dampening, nesterov: bool) -> optax.GradientTransformation:
    """torch SGD momentum: ``b1 = g1``; ``b <- mu*b + (1-tau)*g``; ``d = g + mu*b`` (nesterov) or ``b``."""

    def init(params):
        return BufferState(_count(), _zeros(params))

    def update(updates, state, params=None):
        first = state.count == 0
        buf = jax.tree.map(
            lambda g, b: jnp.where(first, g, momentum * b + (1 - dampening) * g), updates, state.buf
        )
        d = jax.tree.map(lambda g, b: g + momentum * b, updates, buf) if nesterov else buf
        return d, BufferState(optax.safe_increment(state.count), buf)

    return optax.GradientTransformation(init, update)


def scale_by_torch_amsgrad(b1, b2, eps) -> optax.GradientTransformation:
    """``m, v`` as Adam; ``vmax <- max(vmax, v)``; ``d = m/(1-b1^t) / (sqrt(vmax)/sqrt(1-b2^t) + eps)``."""

    def init(params):
        return AMSGradState(_count(), _zeros(params), _zeros(params), _zeros(params))

    def update(updates, state, params=None):
        dt, t = _dtype(updates), _step_t(state.count)
        m, v = _moments(state, updates, b1, b2)
        vmax = jax.tree.map(jnp.maximum, state.vmax, v)
        bc1, sqrt_bc2 = _narrow(1 - _wide(b1) ** t, dt), _narrow(jnp.sqrt(1 - _wide(b2) ** t), dt)
        e = _narrow(eps, dt)
        d = jax.tree.map(lambda m, vm: (m / (jnp.sqrt(vm) / sqrt_bc2 + e)) / bc1, m, vmax)
        return d, AMSGradState(optax.safe_increment(state.count), m, v, vmax)

    return optax.GradientTransformation(init, update)


def scale_by_torch_adagrad(initial_accumulator_value, eps) -> optax.GradientTransformation:
    """``S <- S + g^2`` from ``S0``; ``d = g/(sqrt(S) + eps)`` (lr_decay lives in the lr schedule)."""

    def init(params):
        return BufferState(_count(), jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params))

    def update(updates, state, params=None):
        S = jax.tree.map(lambda s, g: s + g * g, state.buf, updates)
        d = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, S)
        return d, BufferState(optax.safe_increment(state.count), S)

    return optax.GradientTransformation(init, update)


def scale_by_torch_nadam(b1, b2, eps, momentum_decay) -> optax.GradientTransformation:
    """torch NAdam: ``mu_t = b1*(1-0.5*0.96^(t*psi))``, ``P_t = P_{t-1}*mu_t``,
    ``d = [(1-mu_t)/(1-P_t)*g + mu_{t+1}/(1-P_t*mu_{t+1})*m] / (sqrt(v/(1-b2^t)) + eps)``."""

    def init(params):
        dtype = jax.tree.leaves(params)[0].dtype
        return NAdamState(_count(), _zeros(params), _zeros(params), jnp.ones([], dtype))

    def update(updates, state, params=None):
        dt, t = _dtype(updates), _step_t(state.count)
        psi, wb1 = _wide(momentum_decay), _wide(b1)
        mu = wb1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = wb1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        mu_product = state.mu_product * mu.astype(state.mu_product.dtype)  # a tensor in torch: its dtype's product
        m, v = _moments(state, updates, b1, b2)
        bc2 = _narrow(1 - _wide(b2) ** t, dt)
        c_g = _narrow((1.0 - mu) / (1.0 - _wide(mu_product)), dt)
        c_m = _narrow(mu_next / (1.0 - _wide(mu_product) * mu_next), dt)
        e = _narrow(eps, dt)

        def direction(g, m, v):
            denom = jnp.sqrt(v / bc2) + e
            return c_g * (g / denom) + c_m * (m / denom)

        d = jax.tree.map(direction, updates, m, v)
        return d, NAdamState(optax.safe_increment(state.count), m, v, mu_product)

    return optax.GradientTransformation(init, update)


def scale_by_torch_radam(b1, b2, eps) -> optax.GradientTransformation:
    """torch RAdam: ``m_hat = m/(1-b1^t)``; if ``rho_t > 5``:
    ``d = m_hat * sqrt(1-b2^t)/(sqrt(v)+eps) * r_t`` else ``d = m_hat``."""

    def init(params):
        return MomentState(_count(), _zeros(params), _zeros(params))

    def update(updates, state, params=None):
        dt, t = _dtype(updates), _step_t(state.count)
        m, v = _moments(state, updates, b1, b2)
        wb2 = _wide(b2)
        bc1, bc2 = 1 - _wide(b1) ** t, 1 - wb2**t
        rho_inf = 2 / (1 - wb2) - 1
        rho_t = rho_inf - 2 * t * wb2**t / bc2
        rect = _narrow(jnp.sqrt(
            jnp.maximum((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t), 0.0)
        ), dt)  # fmt: skip
        bc1, sqrt_bc2, e = _narrow(bc1, dt), _narrow(jnp.sqrt(bc2), dt), _narrow(eps, dt)

        def direction(m, v):
            m_hat = m / bc1
            return jnp.where(rho_t > 5.0, m_hat * (sqrt_bc2 / (jnp.sqrt(v) + e)) * rect, m_hat)

        d = jax.tree.map(direction, m, v)
        return d, MomentState(optax.safe_increment(state.count), m, v)

    return optax.GradientTransformation(init, update)


class EtaState(NamedTuple):
    count: jax.Array
    eta: jax.Array


def scale_by_torch_asgd_eta(lambd, alpha, lr_t, decoupled=None) -> optax.GradientTransformation:
    """torch ASGD's step size: the direction times ``eta_t`` (it takes the place of the lr: the chain
    ends with ``scale(-1)``, not ``scale_by_learning_rate``; at lr_t = 0 torch still steps by eta_t).

    torch keeps ``eta`` in its state: ``eta_1`` is the lr of the first step, and after step t it is set
    from that step's lr ``L``: ``eta_{t+1} = L/(1 + lambd*L*t)^alpha`` in Python floats, made a tensor of
    torch's default dtype by ``torch.as_tensor`` (xreg's torch runs set it to the run's dtype): computed
    wide, rounded once to the parameters' dtype. ``lr_t`` is this step's lr.

    ``decoupled``: a tree of ``k = lr_t*s`` where decoupled decay ``p <- p*(1 - k)`` runs before the
    step (as xreg's torch loop does); torch's ``p.mul_(1 - lambd*eta)`` then acts on the decayed p, so
    the direction gains ``k*(1 - lambd*eta)*p``.
    """

    def init(params):
        dtype = jax.tree.leaves(params)[0].dtype
        return EtaState(_count(), jnp.zeros([], dtype))

    def update(updates, state, params=None):
        lr = jnp.asarray(lr_t, state.eta.dtype)
        eta = jnp.where(state.count == 0, lr, state.eta)
        t, wide_lr = _step_t(state.count), _wide(lr_t)
        next_eta = (wide_lr / (1 + _wide(lambd) * wide_lr * t) ** _wide(alpha)).astype(lr.dtype)
        d = jax.tree.map(lambda g: g * eta, updates)
        if decoupled is not None:
            d = jax.tree.map(lambda u, k, p: u + k * (1 - lambd * eta) * p, d, decoupled, params)
        return d, EtaState(optax.safe_increment(state.count), next_eta)

    return optax.GradientTransformation(init, update)


class AdafactorState(NamedTuple):
    count: jax.Array
    row: Any  # per leaf: the row second moments (..., r, 1) of a >=2-D leaf, the full second moment of a 1-D one
    col: Any  # per leaf: the column second moments (..., 1, c) of a >=2-D leaf, a scalar placeholder otherwise


def _torch_lerp(a, b, w):
    """torch.lerp with a Python-float weight: ``a + w*(b - a)`` for |w| < 0.5, else ``b - (b - a)*(1 - w)``."""
    return jnp.where(jnp.abs(w) < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


def scale_by_torch_adafactor(lr_t, beta2_decay, eps, d, decoupled=None) -> optax.GradientTransformation:
    """torch.optim.Adafactor's step, the step size included (the chain ends with ``scale(-1)``): per leaf,
    ``b_t = t^beta2_decay``; a >=2-D leaf keeps row and column means of g^2 (``lerp`` by b_t) and
    estimates ``v = R C / max(mean(R), eps1)``, a 1-D leaf keeps ``v`` itself; ``u = g/sqrt(max(v, eps1^2))``;
    the direction is ``a/max(1, rms(u)/d) * u`` with ``a = max(eps2, rms(w))*min(lr_t, 1/sqrt(t))`` taken
    from w before the decay. ``eps = (eps1 or None, eps2)``: None is the parameters' machine epsilon.
    Scalars are computed wide and rounded once, as torch's Python floats.

    ``decoupled``: a tree of ``k = lr_t*wd`` (or a function of the params that returns it, as
    ``xreg.twins.decay_rates``); torch's ``w <- w*(1 - k)`` before its update adds ``k*w`` to the direction.
    """
    eps1, eps2 = eps

    def init(params):
        row = jax.tree.map(lambda p: jnp.zeros(p.shape[:-1] + (1,), p.dtype) if p.ndim > 1 else jnp.zeros_like(p), params)
        col = jax.tree.map(lambda p: jnp.zeros(p.shape[:-2] + (1,) + p.shape[-1:], p.dtype) if p.ndim > 1
                           else jnp.zeros([], p.dtype), params)  # fmt: skip
        return AdafactorState(_count(), row, col)

    def update(updates, state, params=None):
        t = _step_t(state.count)
        b = t ** _wide(beta2_decay)
        rho = jnp.minimum(_wide(lr_t), 1 / jnp.sqrt(t))

        def leaf(g, p, R, C, k):
            dt = g.dtype
            e1 = _wide(jnp.finfo(dt).eps) if eps1 is None else _wide(eps1)
            alpha = jnp.maximum(_wide(eps2), _wide(jnp.linalg.norm(p)) / (p.size**0.5)) * rho
            w = _narrow(b, dt)
            if g.ndim > 1:
                R = _torch_lerp(R, jnp.linalg.norm(g, axis=-1, keepdims=True) ** 2 / g.shape[-1], w)
                C = _torch_lerp(C, jnp.linalg.norm(g, axis=-2, keepdims=True) ** 2 / g.shape[-2], w)
                v = (R @ C) / jnp.maximum(jnp.mean(R, axis=-2, keepdims=True), _narrow(e1, dt))
            else:
                R = _torch_lerp(R, g * g, w)
                v = R
            u = 1 / jnp.sqrt(jnp.maximum(v, _narrow(e1 * e1, dt))) * g
            denom = jnp.maximum(1.0, _wide(jnp.linalg.norm(u)) / (u.size**0.5 * _wide(d)))
            direction = _narrow(alpha / denom, dt) * u
            if k is not None:
                direction = direction + k * p
            return direction, R, C

        ks = decoupled(params) if callable(decoupled) else decoupled
        ks = ks if ks is not None else jax.tree.map(lambda _: None, updates)
        out = jax.tree.map(leaf, updates, params, state.row, state.col, ks, is_leaf=lambda x: x is None)
        pick = lambda i: jax.tree.map(lambda o: o[i], out, is_leaf=lambda x: isinstance(x, tuple))  # noqa: E731
        return pick(0), AdafactorState(optax.safe_increment(state.count), pick(1), pick(2))

    return optax.GradientTransformation(init, update)


# ---- Muon: Newton-Schulz in bfloat16 as torch's CPU kernels round it (see xreg/backends/numpy/run.py) ------
def bf16(x):
    """Values rounded to bfloat16 (nearest, ties to even), held as float32; float64 through float32 first,
    as torch's ``.bfloat16()``."""
    x = x.astype(jnp.float32)
    u = jax.lax.bitcast_convert_type(x, jnp.uint32)
    s = jnp.uint32(16)
    r = (u + jnp.uint32(0x7FFF) + ((u >> s) & jnp.uint32(1))) >> s << s
    return jnp.where(jnp.isfinite(x), jax.lax.bitcast_convert_type(r, jnp.float32), x)


def _halving(a):
    """a[0] + a[h], ... along the first axis, halving until one is left (torch's vector reductions)."""
    while a.shape[0] > 1:
        h = a.shape[0] // 2
        a = a[:h] + a[h:]
    return a[0]


def _gram(X, in_order: bool):
    """bf16(X @ X.T) with torch's float32 sums: k in order (a transposed X), else torch's reduced-precision
    dot (blocks of 64 over 8x8 registers, halving trees, blocks of 8 over the lanes, the rest in order)."""
    m, K = X.shape
    prods = X.T[:, :, None] * X.T[:, None, :]  # (K, m, m): each product exact in float32
    if in_order:
        acc = jnp.zeros((m, m), jnp.float32)
        for k in range(K):
            acc = acc + prods[k]
        return bf16(acc)
    blocks, vec_end = K - K % 64, K - K % 8
    regs = jnp.zeros((8, 8, m, m), jnp.float32)
    for j in range(0, blocks, 64):
        regs = regs + prods[j : j + 64].reshape(8, 8, m, m)
    lanes = _halving(regs)
    for j in range(blocks, vec_end, 8):
        lanes = lanes + prods[j : j + 8]
    total = _halving(lanes)
    for k in range(vec_end, K):
        total = total + prods[k]
    return bf16(total)


def _addmm(C, A, B, beta32, alpha32):
    """bf16(beta*C + alpha*(A @ B)): 4 float32 partial sums over k (the tail in the first), one rounding."""
    K = A.shape[1]
    prods = A.T[:, :, None] * B[:, None, :]  # (K, m, n), exact in float32
    parts = jnp.zeros((4,) + prods.shape[1:], jnp.float32)
    for k in range(0, K - K % 4, 4):
        parts = parts + prods[k : k + 4]
    for r in range(K - K % 4, K):
        parts = parts.at[0].add(prods[r])
    dot = ((parts[0] + parts[1]) + parts[2]) + parts[3]
    exact = beta32.astype(jnp.float64) * C.astype(jnp.float64) + (alpha32 * dot).astype(jnp.float64)
    return bf16(exact.astype(jnp.float32))


def newton_schulz(G, coefficients, steps: int, eps):
    """torch's ``_zeropower_via_newtonschulz`` on a 2-D leaf: the bfloat16 result, held as float32."""
    a, b, c = (jnp.asarray(x).astype(jnp.float32) for x in coefficients)
    X = bf16(G)
    transposed = G.shape[0] > G.shape[1]
    if transposed:
        X = X.T
    norm = bf16(jnp.sqrt(jnp.sum(X.astype(jnp.float64) ** 2)).astype(jnp.float32))
    X = bf16(X / jnp.maximum(norm, bf16(_wide(eps))))
    one = jnp.float32(1.0)
    for i in range(steps):
        A = _gram(X, in_order=transposed and i == 0)
        X = _addmm(X, _addmm(A, A, A, b, c), X, a, one)
    return X.T if transposed else X


def matrix_labels(params):
    """optax.partition's labels for torch's Muon pairing: 'muon' on 2-D leaves, 'others' elsewhere."""
    return jax.tree.map(lambda p: "muon" if p.ndim == 2 else "others", params)


class MuonState(NamedTuple):
    buf: Any


def scale_by_torch_muon(momentum, ns_coefficients, eps, *, nesterov: bool = True, ns_steps: int = 5,
                        adjust_lr_fn: str | None = None) -> optax.GradientTransformation:  # fmt: skip
    """torch.optim.Muon's direction on 2-D leaves, before the lr: ``B <- lerp(B, g, 1-mu)``,
    ``U = lerp(g, B, mu)`` (nesterov) or ``B``, ``O = NS(U)`` in bfloat16, ``d = r*O`` with torch's shape
    ratio ``r`` (``sqrt(max(1, A/B))``; ``match_rms_adamw``: ``0.2*sqrt(max(A, B))``)."""
    from xreg.semantics.optimizers import muon_ratio

    def init(params):
        return MuonState(jax.tree.map(jnp.zeros_like, params))

    def update(updates, state, params=None):
        def moment(g, B):
            return _torch_lerp(B, g, _narrow(1 - _wide(momentum), g.dtype))

        def direction(g, B):
            dt = g.dtype
            U = _torch_lerp(g, B, _narrow(momentum, dt)) if nesterov else B
            O = newton_schulz(U, ns_coefficients, ns_steps, eps)
            return _narrow(muon_ratio(adjust_lr_fn, g.shape), dt) * O.astype(dt)

        buf = jax.tree.map(moment, updates, state.buf)
        return jax.tree.map(direction, updates, buf), MuonState(buf)

    return optax.GradientTransformation(init, update)
