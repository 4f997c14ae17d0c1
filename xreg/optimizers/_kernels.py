"""torch's roundings, written once against an array namespace (``xp``: ``numpy`` or ``jax.numpy``) and used
by the NumPy references and the JAX twins alike: scalars computed wide and rounded once (``wide``,
``narrow``), ``torch.lerp``, and Muon's bfloat16 Newton-Schulz as torch's CPU kernels round it.

Newton-Schulz: torch computes it on ``grad.bfloat16()``: every product of two bfloat16 numbers is exact in
float32, the sums run in float32 and each result is rounded to bfloat16. Which float32 sums torch forms
decides the rare ties, so they are written out as its CPU kernels form them (measured against torch 2.13,
AVX2): X @ X.T sums as torch's reduced-precision dot product (see :func:`gram`); on a transposed
(non-contiguous) X it sums k in order. addmm(C, A, B, beta, alpha) keeps 4 partial sums over k (the tail in
the first), adds them in order, and rounds beta*C + alpha*dot once (a fused multiply-add). Other kernels
(oneDNN's on an AVX-512-BF16 CPU) form other sums: ``xreg.backends.torch.kernels`` probes which case holds.

Only roundings live here: the update equations of each optimizer are written in its module, once for the
NumPy reference and once, independently, for the optax twin.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _is_numpy(xp: Any) -> bool:
    return xp is np


def wide(x: Any, xp: Any = np) -> Any:
    """``x`` in the widest float available (float64; inside xreg's JAX runs, which enable x64): torch
    computes its scalar coefficients (bias corrections, NAdam's mu, RAdam's rho, ASGD's eta) in Python floats."""
    if _is_numpy(xp):
        return np.asarray(x, np.float64)
    import jax

    return xp.asarray(x, jax.dtypes.canonicalize_dtype(xp.float64))


def narrow(x: Any, dtype: Any, xp: Any = np) -> Any:
    """A wide scalar rounded once to the parameters' dtype (what torch does to a Python float it applies)."""
    return wide(x, xp).astype(dtype)


def lerp(a: Any, b: Any, w: Any, xp: Any = np) -> Any:
    """torch.lerp with a scalar weight: ``a + w*(b - a)`` for |w| < 0.5, else ``b - (b - a)*(1 - w)``."""
    return xp.where(abs(w) < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


def _bits(x: Any, xp: Any) -> Any:
    if _is_numpy(xp):
        return x.view(np.uint32)
    import jax

    return jax.lax.bitcast_convert_type(x, xp.uint32)


def _floats(u: Any, xp: Any) -> Any:
    if _is_numpy(xp):
        return u.view(np.float32)
    import jax

    return jax.lax.bitcast_convert_type(u, xp.float32)


def bf16(x: Any, xp: Any = np) -> Any:
    """Values rounded to bfloat16, nearest with ties to even, held as float32. float64 goes through float32
    first, as torch's ``.bfloat16()`` does (a double rounding: measured, 6 in a million differ from one)."""
    x = np.array(x, np.float32) if _is_numpy(xp) else xp.asarray(x).astype(xp.float32)
    u, s = _bits(x, xp), xp.uint32(16)
    with np.errstate(over="ignore"):  # a non-finite value wraps; it is kept as it was below
        r = (u + xp.uint32(0x7FFF) + ((u >> s) & xp.uint32(1))) >> s << s
    return xp.where(xp.isfinite(x), _floats(r, xp), x)


def halving(a: Any) -> Any:
    """a[0] + a[h], ... along the first axis, halving until one is left (torch's vector reductions)."""
    while a.shape[0] > 1:
        h = a.shape[0] // 2
        a = a[:h] + a[h:]
    return a[0]


def gram(X: Any, in_order: bool, xp: Any = np) -> Any:
    """bf16(X @ X.T) with torch's float32 sums: k in order on a transposed X; else torch's reduced-precision
    dot: blocks of 64 into 8 registers of 8 lanes (k -> register k//8, lane k%8), the registers added as a
    halving tree, then blocks of 8 into the lanes, the lanes added as a halving tree, and the last K % 8
    products added in order."""
    m, K = X.shape
    prods = X.T[:, :, None] * X.T[:, None, :]  # (K, m, m): each product exact in float32
    if in_order:
        acc = xp.zeros((m, m), xp.float32)
        for k in range(K):
            acc = acc + prods[k]
        return bf16(acc, xp)
    blocks, vec_end = K - K % 64, K - K % 8
    regs = xp.zeros((8, 8, m, m), xp.float32)
    for j in range(0, blocks, 64):
        regs = regs + prods[j : j + 64].reshape(8, 8, m, m)
    lanes = halving(regs)
    for j in range(blocks, vec_end, 8):
        lanes = lanes + prods[j : j + 8]
    total = halving(lanes)
    for k in range(vec_end, K):
        total = total + prods[k]
    return bf16(total, xp)


def addmm(C: Any, A: Any, B: Any, beta: Any, alpha: Any, xp: Any = np) -> Any:
    """bf16(beta*C + alpha*(A @ B)) with torch's float32 sums (4 partial sums over k, the tail in the first)
    and one rounding of beta*C + alpha*dot."""
    beta, alpha = (xp.asarray(v).astype(xp.float32) for v in (beta, alpha))
    K = A.shape[1]
    prods = A.T[:, :, None] * B[:, None, :]  # (K, m, n), exact in float32
    parts = xp.zeros((4,) + prods.shape[1:], xp.float32)
    for k in range(0, K - K % 4, 4):
        parts = parts + prods[k : k + 4]
    first = parts[0]
    for r in range(K - K % 4, K):
        first = first + prods[r]
    dot = ((first + parts[1]) + parts[2]) + parts[3]
    exact = beta.astype(xp.float64) * C.astype(xp.float64) + (alpha * dot).astype(xp.float64)
    return bf16(exact.astype(xp.float32), xp)


def newton_schulz(G: Any, coefficients: Any, steps: int, eps: Any, xp: Any = np) -> Any:
    """torch's ``_zeropower_via_newtonschulz`` on a 2-D array: the bfloat16 result, held as float32."""
    a, b, c = (xp.asarray(x).astype(xp.float32) for x in coefficients)
    X = bf16(G, xp)
    transposed = G.shape[0] > G.shape[1]
    if transposed:
        X = X.T
    norm = bf16(xp.sqrt(xp.sum(X.astype(xp.float64) ** 2)).astype(xp.float32), xp)
    X = bf16(X / xp.maximum(norm, bf16(wide(eps, xp), xp)), xp)
    one = xp.float32(1.0)
    for i in range(steps):
        A = gram(X, transposed and i == 0, xp)
        X = addmm(X, addmm(A, A, A, b, c, xp), X, a, one, xp)
    return X.T if transposed else X
