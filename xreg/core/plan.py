"""What every backend must share to be comparable: initial parameters and the batch order.

Both are generated once here, in NumPy, and handed to each backend, so a difference between two runs
can only come from the update rule.

Batch order: without ``shuffle`` every epoch visits rows 0..n-1 in file order. With ``shuffle`` epoch
``e`` visits ``numpy.random.default_rng(seed).permutation(n)`` drawn for e = 0, 1, ... in turn from one
generator. Batches are consecutive slices of that order of ``batch_size`` rows; the last one keeps the
remainder (``DataLoader(drop_last=False)``). Initial parameters, one array per parameter name in
the model's order: zeros; ``init_scale * N(0, 1)`` drawn from ``default_rng(seed)``, parameter by
parameter, before any permutation; ``torch``: ``nn.Linear``'s default init, ``U(-1/sqrt(fan_in),
1/sqrt(fan_in))`` for each layer's weight then bias, drawn the same way; all equal to ``init_scale``
(``init='constant'``); or the arrays of ``init_from`` (a .npz file, checked against the shapes).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Iterator, Mapping, NamedTuple

import numpy as np

from xreg.core.checks import XregInputError, check_float
from xreg.core.spec import ExperimentSpec
from xreg import models
from xreg.models import Architecture


class Batch(NamedTuple):
    """One step's rows: what ``step(state, batch, hparams)`` consumes (the data rows travel with it)."""

    X: np.ndarray  # (m, d)
    y: np.ndarray  # (m,)
    epoch: int  # 0-based epoch: the lr schedule's argument when it is stepped per epoch
    epoch_end: bool  # the last batch of its epoch (torch steps a per-epoch lr_scheduler after it)
    drop: list[np.ndarray] | None = None  # per hidden block, the rows' dropout multipliers (None: no dropout)
    count: int = 0  # optimizer steps before this one (optax's count; torch's scheduler calls with --schedule-every step)
    micro: tuple["Batch", ...] | None = None  # an accumulated step's micro-batches (X, y: all their rows), else None


@dataclass(frozen=True, eq=False)
class TrainingPlan:
    params0: Mapping[str, np.ndarray]  # name -> float64 array in the model's shape
    order: np.ndarray  # (epochs, n) int64: row visited at each position of each epoch
    batch_sizes: tuple[int, ...]  # rows in each batch of an epoch; the last may be short
    buffers0: Mapping[str, np.ndarray] = field(default_factory=dict)  # batch norm's running statistics at the start
    drop: tuple[np.ndarray, ...] = ()  # per hidden block, (micro-batches, B, H): each batch's dropout multipliers keep/(1-p)
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation): a step is K consecutive batches

    def drop_at(self, step: int, rows: int) -> list[np.ndarray] | None:
        """Step ``step``'s dropout multipliers for its ``rows`` rows, per hidden block (None: no dropout)."""
        return [d[step, :rows] for d in self.drop] if self.drop else None

    @property
    def n_batches(self) -> int:
        return len(self.batch_sizes)

    @property
    def micro_steps(self) -> int:
        """Batches over the run (each one forward and backward pass)."""
        return self.order.shape[0] * self.n_batches

    @property
    def steps(self) -> int:
        """Optimizer steps over the run (the batches, or their groups of ``accumulate``)."""
        return self.micro_steps // self.accumulate

    @property
    def steps_per_epoch(self) -> int:
        return self.n_batches // self.accumulate

    def batches(self):
        """Yield ``(epoch, index array)`` for every batch (micro-batch), in order."""
        bounds = np.cumsum((0,) + self.batch_sizes)
        for epoch, row_order in enumerate(self.order):
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                yield epoch, row_order[lo:hi]

    def data_batches(self, X: np.ndarray, y: np.ndarray) -> Iterator[Batch]:
        """Every optimizer step's :class:`Batch` of the rows of ``X``, ``y``, in order (accumulated: its
        micro-batches in ``micro``)."""
        nb, K = self.n_batches, self.accumulate
        group: list[Batch] = []
        for k, (epoch, rows) in enumerate(self.batches()):
            group.append(Batch(X[rows], y[rows], epoch, (k + 1) % nb == 0, self.drop_at(k, len(rows)), k // K))
            if len(group) == K:
                if K == 1:
                    yield group[0]
                else:
                    g = group[-1]
                    yield Batch(np.concatenate([b.X for b in group]), np.concatenate([b.y for b in group]), g.epoch, g.epoch_end,
                                None, g.count, tuple(group))  # fmt: skip
                group = []

    @property
    def in_file_order(self) -> bool:
        """Every step is the whole training set in file order (one full batch per epoch, no shuffle)."""
        rows = self.order[:1] if self.order.strides[0] == 0 else self.order  # one epoch's row of a broadcast order
        return self.n_batches == 1 and bool(np.all(rows == np.arange(self.order.shape[1])))

    def rows_of_step(self) -> np.ndarray:
        """Rows in each batch (micro-batch), (micro_steps,)."""
        return np.tile(np.asarray(self.batch_sizes, np.int64), self.order.shape[0])

    def epoch_ends(self) -> np.ndarray:
        """0-based index of the last optimizer step of each epoch."""
        per = self.steps_per_epoch
        return np.arange(self.order.shape[0]) * per + per - 1

    def recorded(self, every: int) -> np.ndarray:
        """Steps done at each recorded row: 0, every, 2*every, ..., and always the last step."""
        rows = np.arange(0, self.steps + 1, every)
        return rows if rows[-1] == self.steps else np.append(rows, self.steps)

    def padded_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(micro_steps, B) row indices and a 0/1 validity mask, B = the largest batch (for scan-style loops)."""
        width = max(self.batch_sizes)
        idx = np.zeros((self.micro_steps, width), dtype=np.int64)
        valid = np.zeros((self.micro_steps, width), dtype=bool)
        for step, (_, rows) in enumerate(self.batches()):
            idx[step, : len(rows)] = rows
            valid[step, : len(rows)] = True
        return idx, valid


RECORD_BUDGET_GIB = 2.0  # the default bound on the trajectories one command keeps in memory (--max-memory)


def record_bytes(steps: int, every: int, n_params: int) -> int:
    """Memory one run's record takes: its kept rows (every ``every``-th step, the start and the last) x
    (the parameters + the batch loss and penalty) x 8 bytes, twice (the backend's array and the
    trajectory made from it)."""
    rows = steps // every + 2
    return 2 * rows * (n_params + 2) * 8


def check_record_budget(steps: int, every: int, n_params: int, runs: int, budget_gib: float, spare: int = 0) -> None:
    """Refuse, before anything runs, a set of runs whose records exceed ``budget_gib``, with the numbers and the ways out."""
    budget_gib = check_float("max_memory", budget_gib, 0.0, closed="neither")  # a number > 0 (nan would turn the check off)
    need = (runs + spare) * record_bytes(steps, every, n_params)  # spare: runs that may be added (floors)
    budget = budget_gib * 2**30
    least = (runs + spare) * record_bytes(steps, steps + 1, n_params)  # the start and the last step: always kept
    if least > budget:
        raise XregInputError(
            f"The model is too large for --max-memory {budget_gib:g} GiB: its {n_params} parameters, kept at the start and the "
            f"last step for {runs + spare} runs, take {least / 2**30:.3g} GiB; use a smaller model or raise --max-memory."
        )
    if need > budget:
        k = math.ceil(every * need / budget)
        raise XregInputError(
            f"The runs would keep {need / 2**30:.3g} GiB of parameters in memory (({runs} runs{f' and {spare} for the round-off floor' if spare else ''}) x {steps // every + 2} kept "
            f"steps x {n_params + 2} numbers x 8 bytes x 2), over the budget of {budget_gib:g} GiB: keep every K-th step "
            f"with --record-every {k} (or more), run fewer epochs or fewer runs, or raise --max-memory."
        )


MAX_ROW_VISITS = 50_000_000  # epochs x rows of a shuffled or minibatch run: its batch order is 8 bytes per visit


ONE_THREAD_WORK = 2**20  # multiply-adds of a step's forward pass below which a step runs on one thread


def one_thread(spec: ExperimentSpec, arch: Architecture, n_rows: int) -> bool:
    """A step small enough that one thread is the fastest way to run it (the largest batch's rows times the
    parameters, a forward pass's multiply-adds for dense layers, under :data:`ONE_THREAD_WORK`): threads cost
    more than they split there, and a busy machine makes them wait on each other (torch's default threads
    made the default problem ten times slower beside other work). A convolution is its parameters times
    the positions it is applied at: never counted as small."""
    if arch.conv is not None:
        return False
    return max(batch_sizes(spec, n_rows)) * sum(math.prod(s) for s in arch.shapes.values()) < ONE_THREAD_WORK


def batch_sizes(spec: ExperimentSpec, n_rows: int) -> tuple[int, ...]:
    """Rows in each batch of an epoch (the last may be short), after checking the run fits in memory.

    Cheap: it builds no batch order, so callers that only need the sizes can ask before training.
    """
    batch = n_rows if spec.batch_size is None else min(spec.batch_size, n_rows)
    in_order = not spec.shuffle and batch == n_rows  # no batch order is stored: every step reads all rows
    if spec.epochs * n_rows > MAX_ROW_VISITS and not in_order:
        raise XregInputError(
            f"The run is too large: {spec.epochs} epochs x {n_rows} rows = {spec.epochs * n_rows:.3g} row visits, "
            f"more than {MAX_ROW_VISITS:.0e}; use fewer epochs or fewer rows (a full batch in file order has no limit)."
        )
    return (batch,) * (n_rows // batch) + ((n_rows % batch,) if n_rows % batch else ())


def check_params(params: Mapping[str, np.ndarray], arch: Architecture, source: str) -> dict[str, np.ndarray]:
    """Every missing, extra or misshapen array, listed in one error; else float64 copies in model order."""
    problems = [f"missing '{n}' {tuple(s)}" for n, s in arch.shapes.items() if n not in params]
    problems += [f"unexpected '{n}'" for n in params if n not in arch.shapes]
    for n, shape in arch.shapes.items():
        if n in params and tuple(np.shape(params[n])) != tuple(shape):
            problems.append(f"'{n}' has shape {tuple(np.shape(params[n]))}, the model needs {tuple(shape)}")
    if problems:
        raise XregInputError(f"{source} does not fit the {arch.model} model: " + "; ".join(problems) + ".")
    out = {}
    for n in arch.names:
        a = np.asarray(params[n])
        if not np.issubdtype(a.dtype, np.number) or not np.all(np.isfinite(a)):
            raise XregInputError(f"{source}: the array '{n}' must hold finite numbers.")
        out[n] = a.astype(np.float64)
    return out


NPZ_MAX_BYTES = 8 * 2**30  # the arrays of one .npz file, as their headers state them, before any is read


def read_npz(path, what: str) -> dict[str, np.ndarray]:
    """Every array of a .npz file (no pickles, real numbers only); a missing, unreadable, foreign or
    oversized file (the headers' shapes are checked before anything is allocated) is one input error
    that names ``what`` the file was meant to be ('parameter', 'trajectory')."""
    import zipfile

    def bad(why: str) -> XregInputError:
        return XregInputError(f"The {what} file '{path}' is not a readable .npz file ({why}).")

    p = os.fspath(path)
    if not os.path.exists(p):
        raise XregInputError(f"The {what} file '{path}' does not exist.")
    if not os.path.isfile(p):
        raise bad("not a regular file")
    try:
        with zipfile.ZipFile(p) as z:
            members = [i for i in z.infolist() if i.filename.endswith(".npy")]
            if len(members) != len(z.infolist()):
                raise bad("it holds files other than .npy arrays")
            total, out = 0, {}
            for info in members:
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shape, fortran, dtype = read(f, max_header_size=10_000)
                    if dtype.hasobject or dtype.kind not in "biufU":  # numbers, and the text of a trajectory's meta
                        raise bad(f"the array '{info.filename[:-4]}' holds {dtype} values, not real numbers or text")
                    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
                    total += size
                    if size > info.file_size + (1 << 20):  # the header claims more than the member holds
                        raise bad(f"the header of '{info.filename[:-4]}' claims {size / 2**30:.3g} GiB, beyond what the file holds")
                    if total > NPZ_MAX_BYTES:
                        raise bad(f"its arrays hold {total / 2**30:.3g} GiB, beyond the {NPZ_MAX_BYTES / 2**30:g} GiB limit")
            with np.load(p, allow_pickle=False) as f:
                for k in f.files:
                    out[k] = f[k]
            return out
    except XregInputError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
        raise bad(f"{type(exc).__name__}: {str(exc)[:200]}") from None


def load_npz(path: str, arch: Architecture) -> dict[str, np.ndarray]:
    """Initial parameters from a .npz file whose arrays are named as the model's parameters."""
    return check_params(read_npz(path, "parameter"), arch, f"'{path}'")


def initial_params(spec: ExperimentSpec, arch: Architecture, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The start: ``init_from``'s arrays, or each conv and dense layer's weight then bias drawn in turn from
    ``rng`` by the init family: torch (``nn.Linear``/``nn.Conv2d``: kaiming_uniform(a=sqrt(5)) =
    U(+-1/sqrt(fan_in)), the bias too), flax (lecun_normal: N(0, 1/fan_in) truncated at two standard
    deviations and rescaled by 1/0.8796, redrawn outside; bias 0), keras (glorot_uniform:
    U(+-sqrt(6/(fan_in + fan_out))); bias 0); a norm's scale 1 and shift 0 in every family."""
    if spec.init_from is not None:
        return load_npz(spec.init_from, arch)
    init = "flax" if "init" in spec.naive_layers else spec.init  # the naive port's own start
    out = {n: np.ones(shape) if n.endswith("weight") else np.zeros(shape)  # a norm's scale 1 and shift 0 (torch's, flax's)
           for n, shape in arch.shapes.items() if n not in arch.dense_names}  # fmt: skip
    for prefix, fan_in, fan_out in arch.init_layers:
        for name in (n for n in (prefix + "weight", prefix + "bias") if n in arch.shapes):
            out[name] = _draw(init, spec.init_scale, arch.shapes[name], fan_in, fan_out, name.endswith("bias"), rng)
    return {n: out[n] for n in arch.names}


def _draw(init: str, scale: float, shape, fan_in: int, fan_out: int, bias: bool, rng: np.random.Generator) -> np.ndarray:
    if init == "normal":
        return scale * rng.standard_normal(shape)
    if init == "torch":  # kaiming_uniform_(a=sqrt(5)) and the fan-in bias: both 1/sqrt(fan_in)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return rng.uniform(-bound, bound, shape)
    if init in ("flax", "keras") and bias:
        return np.zeros(shape)
    if init == "flax":  # variance_scaling(1, 'fan_in', 'truncated_normal')
        z = rng.standard_normal(shape)
        while np.any(bad := np.abs(z) > 2):
            z[bad] = rng.standard_normal(int(np.sum(bad)))
        return z * (math.sqrt(1 / fan_in) / 0.87962566103423978)
    if init == "keras":
        bound = math.sqrt(6 / (fan_in + fan_out))
        return rng.uniform(-bound, bound, shape)
    return np.full(shape, scale if init == "constant" else 0.0)


DROP_BUDGET_BYTES = 2**30  # the dropout multipliers of a run (steps x batch rows x hidden units x 8 bytes)


def dropout_multipliers(spec: ExperimentSpec, arch: Architecture, steps: int, rows: int) -> tuple[np.ndarray, ...]:
    """Each step's dropout multipliers ``keep/(1-p)`` (keep = U >= p) per hidden block, (steps, rows, H),
    drawn from their own generator ``default_rng([seed, 1])`` block by block (the parameters' and the
    batch order's draws are untouched), shared by every backend so the runs stay comparable step by step."""
    widths = arch.dropout_widths
    if arch.dropout <= 0 or not widths:
        return ()
    need = steps * rows * sum(widths) * 8
    if need > DROP_BUDGET_BYTES:
        raise XregInputError(
            f"The dropout masks would take {need / 2**30:.3g} GiB ({steps} steps x {rows} rows x {sum(widths)} dropped "
            f"units x 8 bytes), over {DROP_BUDGET_BYTES / 2**30:g} GiB: run fewer epochs, smaller batches or narrower layers."
        )
    rng = np.random.default_rng([spec.seed, 1])
    return tuple(np.where(rng.random((steps, rows, h)) >= arch.dropout, 1.0 / (1.0 - arch.dropout), 0.0) for h in widths)


def make_plan(spec: ExperimentSpec, n_rows: int, arch: Architecture) -> TrainingPlan:
    sizes = batch_sizes(spec, n_rows)
    rng = np.random.default_rng(spec.seed)
    params0 = initial_params(spec, arch, rng)
    if spec.init_ulps:  # a zero moves by ulps of the largest start (an ulp of 0.0 itself is a denormal, lost at once)
        scale = max((float(np.max(np.abs(p), initial=0.0)) for p in params0.values()), default=0.0) or 1.0
        for _ in range(spec.init_ulps):
            params0 = {n: np.where(p == 0, p + np.spacing(scale), np.nextafter(p, np.inf)) for n, p in params0.items()}
    if spec.shuffle:
        order = np.stack([rng.permutation(n_rows) for _ in range(spec.epochs)])
    else:
        order = np.broadcast_to(np.arange(n_rows), (spec.epochs, n_rows))
    if spec.reverse_batches:  # each batch's rows in reverse order: the same batches, summed the other way round
        bounds = np.cumsum((0,) + sizes)
        flipped = np.concatenate([np.arange(hi - 1, lo - 1, -1) for lo, hi in zip(bounds[:-1], bounds[1:])])
        order = order[:, flipped] if spec.shuffle else np.broadcast_to(flipped, order.shape)
    drop = dropout_multipliers(spec, arch, spec.epochs * len(sizes), max(sizes))
    return TrainingPlan(params0, order, sizes, models.initial_buffers(arch), drop, spec.accumulate)
