"""What every backend must share to be comparable: initial parameters and the batch order.

Both are generated once here, in NumPy, and handed to each backend, so a difference between two runs
can only come from the update rule.

Batch order: without ``shuffle`` every epoch visits rows 0..n-1 in file order. With ``shuffle`` epoch
``e`` visits ``numpy.random.default_rng(seed).permutation(n)`` drawn for e = 0, 1, ... in turn from one
generator. Batches are consecutive slices of that order of ``batch_size`` rows; the last one keeps the
remainder (``DataLoader(drop_last=False)``). Initial parameters: zeros; ``init_scale * N(0, 1)``
drawn from ``default_rng(seed)`` for the weight then the bias, before any permutation; or all equal
to ``init_scale`` (``init='constant'``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xreg.checks import XregInputError
from xreg.spec import ExperimentSpec


@dataclass(frozen=True, eq=False)
class TrainingPlan:
    weight0: np.ndarray  # (d,) float64
    bias0: np.ndarray  # (1,) float64
    order: np.ndarray  # (epochs, n) int64: row visited at each position of each epoch
    batch_sizes: tuple[int, ...]  # rows in each batch of an epoch; the last may be short

    @property
    def n_batches(self) -> int:
        return len(self.batch_sizes)

    @property
    def steps(self) -> int:
        return self.order.shape[0] * self.n_batches

    def batches(self):
        """Yield ``(epoch, index array)`` for every step, in order."""
        bounds = np.cumsum((0,) + self.batch_sizes)
        for epoch, row_order in enumerate(self.order):
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                yield epoch, row_order[lo:hi]

    def padded_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, B) row indices and a 0/1 validity mask, B = the largest batch (for scan-style loops)."""
        width = max(self.batch_sizes)
        idx = np.zeros((self.steps, width), dtype=np.int64)
        valid = np.zeros((self.steps, width), dtype=bool)
        for step, (_, rows) in enumerate(self.batches()):
            idx[step, : len(rows)] = rows
            valid[step, : len(rows)] = True
        return idx, valid

    def step_batch_size(self, step: int) -> int:
        """Rows in the batch of 0-based ``step``."""
        return self.batch_sizes[step % self.n_batches]


MAX_ROW_VISITS = 50_000_000  # epochs x rows: the batch order alone is 8 bytes per visit


def batch_sizes(spec: ExperimentSpec, n_rows: int) -> tuple[int, ...]:
    """Rows in each batch of an epoch (the last may be short), after checking the run fits in memory.

    Cheap: it builds no batch order, so callers that only need the sizes can ask before training.
    """
    if spec.epochs * n_rows > MAX_ROW_VISITS:
        raise XregInputError(
            f"The run is too large: {spec.epochs} epochs x {n_rows} rows = {spec.epochs * n_rows:.3g} row visits, "
            f"more than {MAX_ROW_VISITS:.0e}; use fewer epochs or fewer rows."
        )
    batch = n_rows if spec.batch_size is None else min(spec.batch_size, n_rows)
    return (batch,) * (n_rows // batch) + ((n_rows % batch,) if n_rows % batch else ())


def make_plan(spec: ExperimentSpec, n_rows: int, n_features: int) -> TrainingPlan:
    sizes = batch_sizes(spec, n_rows)
    rng = np.random.default_rng(spec.seed)
    if spec.init == "normal":
        weight0 = spec.init_scale * rng.standard_normal(n_features)
        bias0 = spec.init_scale * rng.standard_normal(1)
    else:
        fill = spec.init_scale if spec.init == "constant" else 0.0
        weight0, bias0 = np.full(n_features, fill), np.full(1, fill)
    for _ in range(spec.init_ulps):
        weight0, bias0 = np.nextafter(weight0, np.inf), np.nextafter(bias0, np.inf)
    if spec.shuffle:
        order = np.stack([rng.permutation(n_rows) for _ in range(spec.epochs)])
    else:
        order = np.broadcast_to(np.arange(n_rows), (spec.epochs, n_rows))
    return TrainingPlan(weight0, bias0, order, sizes)
