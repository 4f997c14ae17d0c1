"""The convolution and pooling of the ``cnn`` model, stated once: shapes, forward and the hand-written backward.

Layout: torch's NCHW, kernels OIHW (``nn.Conv2d``'s ``weight`` (C_out, C_in, k, k)). A convolution with
stride ``s`` and symmetric zero padding ``p`` (torch's ``padding=p``; flax's ``SAME`` pads asymmetrically
where the total padding is odd) maps H to ``(H + 2p - k)//s + 1``::

    z[n, o, h, w] = sum_{c, i, j} W[o, c, i, j] * x_pad[n, c, h*s + i, w*s + j] (+ b[o])

Pooling over ``q x q`` windows with stride ``q`` (``nn.MaxPool2d(q)`` / ``nn.AvgPool2d(q)``, flax's
``max_pool``/``avg_pool`` with ``VALID`` padding) keeps ``H//q`` rows: a remainder is dropped. A max
pool's gradient goes to the first maximum of its window in row-major order (torch's and XLA's rule;
ties matter only where they are exact).
"""

from __future__ import annotations

from dataclasses import dataclass

POOLS = ("max", "avg")


@dataclass(frozen=True)
class Conv:
    """One conv2d layer on images of shape ``image`` (C_in, H, W), then a pooling."""

    image: tuple[int, int, int]
    channels: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1
    pool: str = "max"
    pool_size: int = 2

    @property
    def out_hw(self) -> tuple[int, int]:
        k, s, p = self.kernel, self.stride, self.padding
        return tuple((n + 2 * p - k) // s + 1 for n in self.image[1:])  # type: ignore[return-value]

    @property
    def pooled_hw(self) -> tuple[int, int]:
        return tuple(n // self.pool_size for n in self.out_hw)  # type: ignore[return-value]

    @property
    def features(self) -> int:
        """What the dense head reads: channels x pooled height x pooled width, flattened C-major (torch's)."""
        h, w = self.pooled_hw
        return self.channels * h * w

    @property
    def fan_in(self) -> int:
        return self.image[0] * self.kernel * self.kernel

    def describe(self) -> str:
        c, h, w = self.image
        (oh, ow), (ph, pw) = self.out_hw, self.pooled_hw
        return (f"conv {self.kernel}x{self.kernel} stride {self.stride} padding {self.padding}: {c}x{h}x{w} -> "
                f"{self.channels}x{oh}x{ow}; {self.pool} pool {self.pool_size}x{self.pool_size} -> {self.channels}x{ph}x{pw}")  # fmt: skip


def patches(x, conv: Conv, xp):
    """(N, C_in, k, k, H', W'): the padded input seen by each kernel offset (i, j) at each output place."""
    k, s, p = conv.kernel, conv.stride, conv.padding
    xpad = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
    oh, ow = conv.out_hw
    rows = [[xpad[:, :, i : i + s * (oh - 1) + 1 : s, j : j + s * (ow - 1) + 1 : s] for j in range(k)] for i in range(k)]
    return xp.stack([xp.stack(r, axis=2) for r in rows], axis=2)


def conv_forward(P, weight, xp):
    """z (N, C_out, H', W') from the patches P of :func:`patches` and the OIHW weight."""
    return xp.einsum("ncijhw,ocij->nohw", P, weight)


def conv_weight_grad(P, dz, xp):
    return xp.einsum("nohw,ncijhw->ocij", dz, P)


def _windows(a, q: int, xp):
    """(N, C, H//q, W//q, q*q): each pooling window's values in row-major order (the remainder dropped)."""
    n, c, h, w = a.shape
    hp, wp = h // q, w // q
    win = a[:, :, : hp * q, : wp * q].reshape(n, c, hp, q, wp, q)
    return win.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, hp, wp, q * q)


def pool_forward(a, conv: Conv, xp):
    """The pooled map (N, C, H//q, W//q) and what the backward pass needs (the max's one-hot choice)."""
    win = _windows(a, conv.pool_size, xp)
    if conv.pool == "avg":
        return xp.mean(win, axis=-1), None
    first = xp.argmax(win, axis=-1)  # the first maximum of each window
    choice = (xp.arange(win.shape[-1]) == first[..., None]).astype(a.dtype)
    return xp.sum(win * choice, axis=-1), choice


def pool_backward(dout, choice, shape, conv: Conv, xp):
    """The gradient of the pooled map sent back to the map of ``shape`` (zeros where the remainder was dropped)."""
    q = conv.pool_size
    n, c, h, w = shape
    hp, wp = dout.shape[2:]
    dwin = dout[..., None] * (choice if choice is not None else 1.0 / (q * q))
    if choice is None:
        dwin = xp.broadcast_to(dwin, (n, c, hp, wp, q * q))
    full = dwin.reshape(n, c, hp, wp, q, q).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, hp * q, wp * q)
    if (hp * q, wp * q) != (h, w):
        full = xp.pad(full, ((0, 0), (0, 0), (0, h - hp * q), (0, w - wp * q)))
    return full
