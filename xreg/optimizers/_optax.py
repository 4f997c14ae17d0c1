"""Pieces the optax twins share (imported inside the twins, so importing an optimizer module needs no JAX):
state counts, torch's two moments, the 1-based step. Each twin returns a *direction* ``d`` (torch then
does ``w <- w - lr*d``); ``t`` is the 1-based step, every state keeps its own ``count = t - 1``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from xreg.optimizers._kernels import narrow as _narrow, wide as _wide


def wide(x: Any) -> Any:
    return _wide(x, jnp)


def narrow(x: Any, dtype: Any) -> Any:
    return _narrow(x, dtype, jnp)


def zeros(params: Any) -> Any:
    return jax.tree.map(jnp.zeros_like, params)


def count() -> Any:
    return jnp.zeros([], jnp.int32)


def dtype_of(tree: Any) -> Any:
    return jax.tree.leaves(tree)[0].dtype


def step_t(count: Any) -> Any:
    """The 1-based step t, wide."""
    return wide(count + 1)


def moments(state: Any, updates: Any, b1: Any, b2: Any) -> tuple[Any, Any]:
    """torch's ``m <- lerp(m, g, 1-b1)`` and ``v <- b2*v + (1-b2)*g^2``, each Python-float coefficient
    (``1-b1``, ``b2``, ``1-b2``, computed wide) rounded once to the parameters' dtype, as torch applies it."""
    dt = dtype_of(updates)
    w1, k2, w2 = narrow(1 - wide(b1), dt), narrow(b2, dt), narrow(1 - wide(b2), dt)
    m = jax.tree.map(lambda m, g: m + w1 * (g - m), state.m, updates)
    v = jax.tree.map(lambda v, g: k2 * v + w2 * g * g, state.v, updates)
    return m, v


def decays(decoupled: Any, params: Any, updates: Any) -> Any:
    """A twin's ``decoupled`` argument as a tree of ``k`` per leaf: a tree, a function of the params (as
    ``xreg.twins.decay_rates``), or None (a tree of None: no decay)."""
    ks = decoupled(params) if callable(decoupled) else decoupled
    return ks if ks is not None else jax.tree.map(lambda _: None, updates)


def with_decay(d: Any, decoupled: Any, params: Any, updates: Any) -> Any:
    """An own-step twin's step to subtract ``d`` plus ``k*p`` of a decoupled decay ``p <- p - k*p`` run before it
    (``decoupled`` as :func:`decays` reads it; None: ``d`` as it is)."""
    ks = decays(decoupled, params, updates)
    return jax.tree.map(lambda u, k, p: u if k is None else u + k * p, d, ks, params, is_leaf=lambda x: x is None)


def leafwise(fn: Any, *trees: Any) -> tuple[Any, ...]:
    """``fn`` leaf by leaf over ``trees`` (whose leaves may be None), its tuple of results as a tuple of trees."""
    out = jax.tree.map(fn, *trees, is_leaf=lambda x: x is None)
    width = len(jax.tree.leaves(out, is_leaf=lambda x: isinstance(x, tuple))[0])
    return tuple(jax.tree.map(lambda o: o[i], out, is_leaf=lambda x: isinstance(x, tuple)) for i in range(width))


class BufferState(NamedTuple):
    count: Any
    buf: Any


class MomentState(NamedTuple):
    count: Any
    m: Any
    v: Any
