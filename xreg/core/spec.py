"""Framework-free shared types: what to run (:class:`ExperimentSpec`), on what (:class:`Dataset`), and
what a run produced (:class:`Trajectory`). Everything is validated once, here, at construction.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from xreg import models
from xreg.core.checks import XregInputError, check_bool, check_choice, check_float, check_int
from xreg import optimizers
from xreg import schedules
from xreg.semantics import accumulation, clipping, conventions, losses, resume
from xreg.semantics import layers as layer_conventions

DTYPES = ("float64", "float32")
# The naive differences a naive JAX port computes, one list of codes each (an exact run computes none of them)
NAIVE_FIELDS = ("naive_layers", "naive_schedule", "naive_clip", "naive_loss", "naive_accumulate", "naive_resume")
INITS = ("zeros", "normal", "torch", "flax", "keras", "constant")
PORTS = ("exact", "naive")
DEVICES = ("cpu", "gpu", "tpu")
NS_KERNELS = ("native", "emulated")
MAX_EPOCHS = 10_000_000


@dataclass(frozen=True)
class KernelProbe:
    """Whether xreg's emulation of a framework kernel is that kernel, bit for bit, on this machine
    (``xreg.backends.torch.kernels``): ``exact`` pairs are judged by the tolerance, the others against the
    kernel floor (``xreg.analysis.floors``)."""

    what: str  # the emulated computation ('bfloat16 Newton-Schulz')
    exact: bool
    kernel: str  # the kernel torch runs here, in words
    how: str  # how the answer was had

    def describe(self) -> str:
        state = "bit-identical to" if self.exact else "not bit-identical to"
        return f"xreg's {self.what} is {state} torch's on this machine ({self.kernel}; {self.how})"
DECOUPLED_SCALES = ("lr", "schedule")


def _patterns(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not all(isinstance(v, str) and v for v in value):
        raise XregInputError(f"The '{name}' parameter must be a list of non-empty name patterns. Got {value!r} instead.")
    return tuple(value)


def _group_decay(value: Any) -> tuple[tuple[str, float], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    out = []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], str) and item[0]):
            raise XregInputError(f"The 'group_decay' parameter must map name patterns to floats. Got {value!r} instead.")
        out.append((item[0], check_float(f"group_decay[{item[0]}]", item[1], 0.0)))
    return tuple(out)


def _codes(spec: "ExperimentSpec", name: str, choices) -> None:
    """A list of naive codes: each one of ``choices``, stored once each, in order."""
    value = getattr(spec, name)
    if isinstance(value, str) or not all(isinstance(c, str) for c in value):
        raise XregInputError(f"The '{name}' parameter must be a list of codes. Got {value!r} instead.")
    for code in value:
        check_choice(name, code, choices)
    object.__setattr__(spec, name, tuple(dict.fromkeys(value)))


def _plain(v: Any) -> Any:
    """Tuples as lists, all the way down (a SequentialLR's members are (name, options) pairs)."""
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


@dataclass(frozen=True)
class ExperimentSpec:
    """One training experiment, independent of framework.

    Attributes:
      model: 'logistic', 'linear', 'softmax' or 'mlp' (see :mod:`xreg.models`).
      hidden, activation: the MLP's hidden widths (one int, or a tuple: any depth; stored as a tuple) and its
        activation ('tanh', 'relu', 'gelu' exact, 'gelu-tanh').
      norm: the MLP's norm after each hidden dense layer: 'none', 'batch' (torch's BatchNorm1d) or 'layer'.
      dropout: the MLP's dropout probability after each hidden activation, in [0, 1) (the cnn's: after the pooling).
      naive_layers: the naive layer conventions a JAX run computes (codes of :mod:`xreg.semantics.layers`:
        torch's arguments copied into flax, flax's defaults kept); ``init`` there starts it from flax's init.
      channels, kernel_size, stride, padding, pool, pool_size: the cnn's conv2d (8 channels, 3x3, stride 1,
        padding 1) and pooling ('max' or 'avg', 2x2) on rows read as images (the dataset's ``image_shape``).
      optimizer: a torch.optim name in lower case (see :mod:`xreg.semantics.optimizers`).
      lr: base learning rate, > 0.
      lam: regularization strength, >= 0, read through ``convention``.
      convention: how ``lam`` enters the update (see :mod:`xreg.semantics.conventions`).
      options: optimizer hyperparameters by their torch names; torch defaults fill the rest.
      no_decay: fnmatch patterns of parameter names left out of the regularization ('bias' matches
        every name ending in 'bias'); empty = every parameter is regularized, as torch and the scratch loop do.
      group_decay: (pattern, strength) pairs: parameters matching a pattern are regularized with that
        strength instead of ``lam`` (torch: a param group; optax: a masked ``add_decayed_weights``).
      decoupled_scale: 'lr' (decay times the scheduled lr, torch/optax) or 'schedule' (times the
        schedule multiplier only, Loshchilov & Hutter); only read by the 'decoupled' convention.
      epochs: passes over the training rows.
      batch_size: rows per batch; None = full batch. The last short batch is kept (drop_last=False).
      shuffle, seed: one permutation per epoch from ``seed``, generated once and shared by all backends.
      dtype: 'float64' or 'float32' for data, parameters and optimizer state.
      init: 'zeros'; 'normal' (N(0, init_scale^2) from ``seed``, shared by all backends); 'torch'
        (``nn.Linear``'s default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias, drawn in NumPy
        from ``seed``); 'constant' (every parameter equal to ``init_scale``); None: the model's default
        (zeros, the MLP torch). ``init_from``, a .npz path, overrides it.
      init_ulps: move every initial parameter this many float64 ulps up (a zero by ulps of the largest
        initial magnitude, or of 1.0 when all are zero) (a diagnostic: how much does the trajectory amplify a
        round-off-sized change? see :mod:`xreg.analysis.floors`).
      reverse_batches: sum the rows of every batch in reverse order (the same batches, rounded
        differently; a diagnostic of :mod:`xreg.analysis.floors`).
      ns_kernel: 'native' (torch's own Newton-Schulz kernel) or 'emulated' (xreg's, in the torch backend's Muon:
        the perturbation of the kernel floor of :mod:`xreg.analysis.floors`; the other backends always emulate).
      schedule, schedule_options: the torch lr scheduler class (its name, or 'constant') and its torch-named options
        (see :mod:`xreg.schedules`); options whose default depends on the run (T_max, total_steps: the scheduler's
        calls; max_lr: ``lr``) are filled per run by the structure.
      schedule_every: 'epoch' (``scheduler.step()`` after each epoch's last batch, the default) or 'step' (after
        every optimizer step).
      naive_schedule: the naive schedule codes a naive JAX port computes (:data:`xreg.schedules.NAIVE_CODES`);
        ``('all',)``: every one that acts on the run.
      accumulate: micro-batches per optimizer step (gradient accumulation, torch's loss/K per micro-batch); a step of
        the trajectory is an optimizer step. naive_accumulate: the naive codes a naive JAX port computes
        (:mod:`xreg.semantics.accumulation`).
      resume_at: save every backend's whole state after this many optimizer steps, rebuild from it and go on (the
        run must equal the uninterrupted one); naive_resume: the classic resume bugs a naive JAX port computes
        (:mod:`xreg.semantics.resume`).
      loss_reduction: 'mean' or 'sum' (torch's reduction); class_weight: CrossEntropyLoss's weight, one per class
        (its mean divides by the sum of the rows' weights); label_smoothing: CrossEntropyLoss's eps in [0, 1]
        (eps/K on every class); naive_loss: the naive loss codes a naive JAX port computes (:mod:`xreg.semantics.losses`).
      clip_norm: if set, clip the data gradient to this norm, as torch's clip_grad_norm_ (see
        :mod:`xreg.semantics.clipping`); clip_norm_type its p (2, any p in [1, 1e6), or inf); clip_per_parameter: each tensor by
        its own norm; clip_error_if_nonfinite: torch's error_if_nonfinite=True, the run stops at a step whose total norm
        is nan or inf (torch raises there; NumPy and JAX stop at the same step). clip_value: instead, clamp each element to [-V, V] (torch's clip_grad_value_).
      naive_clip: the naive clipping codes a naive JAX port computes (:data:`xreg.semantics.clipping.CODES`).
      port: 'exact' reproduces torch; 'naive' is the obvious optax alias a user writes first (jax only).
      record_every: keep the parameters (and the batch loss) every this many steps, and after the last
        step, instead of after every step: a long run's memory stays bounded (``Trajectory.steps_at``).
      device: where the run executes (JAX platform; torch uses cuda for 'gpu'); None: the default.
    """

    model: str = "logistic"
    hidden: int | tuple[int, ...] | None = None
    activation: str | None = None
    norm: str | None = None
    dropout: float = 0.0
    channels: int | None = None
    kernel_size: int | None = None
    stride: int | None = None
    padding: int | None = None
    pool: str | None = None
    pool_size: int | None = None
    naive_layers: tuple[str, ...] = ()
    optimizer: str = optimizers.DEFAULT
    lr: float = 0.05
    lam: float = 0.1
    convention: str = "coupled"
    options: Mapping[str, Any] = field(default_factory=dict)
    no_decay: tuple[str, ...] = ()
    group_decay: tuple[tuple[str, float], ...] = ()
    decoupled_scale: str = "lr"
    epochs: int = 1000
    batch_size: int | None = None
    shuffle: bool = False
    seed: int = 0
    dtype: str = "float64"
    init: str | None = None
    init_from: str | None = None
    init_scale: float = 0.1
    init_ulps: int = 0
    reverse_batches: bool = False
    ns_kernel: str = "native"
    schedule: str = "constant"
    schedule_options: Mapping[str, Any] = field(default_factory=dict)
    schedule_every: str = "epoch"
    naive_schedule: tuple[str, ...] = ()
    accumulate: int = 1
    naive_accumulate: tuple[str, ...] = ()
    resume_at: int | None = None
    naive_resume: tuple[str, ...] = ()
    loss_reduction: str = "mean"
    class_weight: tuple[float, ...] | None = None
    label_smoothing: float = 0.0
    naive_loss: tuple[str, ...] = ()
    clip_norm: float | None = None
    clip_norm_type: float = 2.0
    clip_per_parameter: bool = False
    clip_error_if_nonfinite: bool = False
    clip_value: float | None = None
    naive_clip: tuple[str, ...] = ()
    port: str = "exact"
    record_every: int = 1
    device: str | None = None

    def __post_init__(self) -> None:
        row = models.get(self.model)
        self._check_model_fields(row)
        opt = optimizers.get(self.optimizer)
        check_float("lr", self.lr, 0.0, closed="neither")
        check_float("lam", self.lam, 0.0)
        object.__setattr__(self, "convention", conventions.canonical(self.convention))  # 'torch' is still accepted
        check_choice("convention", self.convention, conventions.NAMES)
        object.__setattr__(self, "no_decay", _patterns("no_decay", self.no_decay))
        object.__setattr__(self, "group_decay", _group_decay(self.group_decay))
        check_choice("decoupled_scale", self.decoupled_scale, DECOUPLED_SCALES)
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)  # per-epoch metrics are 3 arrays of this length
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1)
        check_bool("shuffle", self.shuffle)
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_choice("dtype", self.dtype, DTYPES)
        object.__setattr__(self, "init", check_choice("init", row.default_init if self.init is None else self.init, INITS))
        if self.init_from is not None and not isinstance(self.init_from, str):
            raise XregInputError(f"The 'init_from' parameter must be a path. Got {self.init_from!r} instead.")
        check_float("init_scale", self.init_scale)
        check_int("init_ulps", self.init_ulps, 0, 1000)
        check_bool("reverse_batches", self.reverse_batches)
        check_choice("ns_kernel", self.ns_kernel, NS_KERNELS)
        self._check_clipping()
        self._check_loss()
        self._check_accumulation_and_resume()
        check_choice("port", self.port, PORTS)
        check_int("record_every", self.record_every, 1)
        if self.device is not None:
            check_choice("device", self.device, DEVICES)
        # Store the resolved forms: torch defaults filled in, every value checked.
        object.__setattr__(self, "options", MappingProxyType(opt.resolve(dict(self.options))))
        object.__setattr__(self, "schedule", schedules.canonical(self.schedule))
        if not isinstance(self.schedule_options, Mapping):
            raise XregInputError(f"The 'schedule_options' parameter must map option names to values. Got {self.schedule_options!r} instead.")
        object.__setattr__(self, "schedule_options", MappingProxyType(schedules.resolve(self.schedule, dict(self.schedule_options))))
        check_choice("schedule_every", self.schedule_every, schedules.EVERY)
        if self.schedule_every == "step" and self.schedule == schedules.CONSTANT:
            raise XregInputError("schedule_every='step' steps a scheduler; the schedule is 'constant' (give --schedule).")
        _codes(self, "naive_schedule", ("all", *schedules.NAIVE_CODES))
        if not opt.takes_weight_decay and self.decays and conventions.get(self.convention).enters == conventions.CLIPPED:
            raise XregInputError(
                f"{opt.source} takes no weight_decay: use convention 'l2-loss' (L2 in the loss) or "
                "'decoupled' (w <- w - lr*lam*w before each step), or lam 0."
            )
        if opt.native_convention == "decoupled" and self.convention == "coupled":
            raise XregInputError(
                f"The optimizer '{self.optimizer}' decays decoupled ({opt.source}); use convention "
                + (f"'decoupled', or optimizer '{opt.coupled_form}' for coupled weight decay." if opt.coupled_form
                   else "'decoupled' (the class has no coupled form).")
            )

    def _check_model_fields(self, row: "models.Model") -> None:
        """The model's own fields resolved (hidden widths, activation, norm, dropout, the cnn's conv), and
        a field given to a model that has no such part refused."""
        if row.hidden:
            object.__setattr__(self, "hidden", models.hidden_widths(models.DEFAULT_HIDDEN if self.hidden is None else self.hidden))
        if row.layers:
            object.__setattr__(self, "activation", check_choice("activation", "tanh" if self.activation is None else self.activation, models.ACTIVATIONS))
            object.__setattr__(self, "norm", check_choice("norm", "none" if self.norm is None else self.norm, models.NORMS))
            object.__setattr__(self, "dropout", check_float("dropout", self.dropout, 0.0, 1.0, closed="left"))
        if row.name == "cnn":
            for k, v in models.DEFAULT_CONV.items():
                object.__setattr__(self, k, v if getattr(self, k) is None else getattr(self, k))
        misplaced = [k for k, v, ok in (
            ("hidden", self.hidden, row.hidden), ("activation", self.activation, row.layers),
            ("norm", None if self.norm in (None, "none") else self.norm, row.layers), ("dropout", self.dropout or None, row.layers),
            *((k, getattr(self, k), row.name == "cnn") for k in models.CONV_OPTIONS)) if v is not None and not ok]  # fmt: skip
        if misplaced:
            where = "the mlp model (its hidden layers)" if misplaced[0] == "hidden" else (
                "the cnn model" if misplaced[0] in models.CONV_OPTIONS else "the mlp and cnn models")
            raise XregInputError(f"The {' and '.join(repr(k) for k in misplaced)} parameter{'s are' if len(misplaced) > 1 else ' is'} "
                                 f"for {where}, not '{self.model}'.")  # fmt: skip
        if not row.layers:
            object.__setattr__(self, "norm", "none")
        _codes(self, "naive_layers", layer_conventions.CODES)

    def _check_accumulation_and_resume(self) -> None:
        if self.resume_at is not None:
            check_int("resume_at", self.resume_at, 1)
        _codes(self, "naive_resume", resume.CODES)
        check_int("accumulate", self.accumulate, 1, 1000)
        _codes(self, "naive_accumulate", accumulation.CODES)
        if self.accumulate > 1 and self.convention == "scratch":
            raise XregInputError("The scratch convention's lam/m has no one m under gradient accumulation (m rows of which micro-batch?); "
                                 "use convention 'coupled' or 'l2-loss'.")

    def _check_loss(self) -> None:
        check_choice("loss_reduction", self.loss_reduction, models.REDUCTIONS)
        if self.class_weight is not None:
            cw = self.class_weight
            if isinstance(cw, (str, bytes)) or not hasattr(cw, "__len__") or not 2 <= len(cw) <= 10_000:
                raise XregInputError(f"The 'class_weight' parameter must be a list of one weight per class. Got {cw!r} instead.")
            object.__setattr__(self, "class_weight", tuple(check_float(f"class_weight[{i}]", w, 0.0, 1e15) for i, w in enumerate(cw)))
            small = float(np.finfo(self.dtype).tiny) * 1e6  # a weight the run's dtype holds with room to sum and divide
            if any(0 < w < small for w in self.class_weight):
                raise XregInputError(f"The 'class_weight' parameter's weights must be 0 or at least {small:.3g} in {self.dtype} "
                                     "(they are ratios: scale them up).")
            if not any(self.class_weight):
                raise XregInputError("The 'class_weight' parameter needs a weight > 0 (all zero: every row's loss is 0, and torch divides by 0).")
        object.__setattr__(self, "label_smoothing", check_float("label_smoothing", self.label_smoothing, 0.0, 1.0))
        _codes(self, "naive_loss", losses.CODES)

    def _check_clipping(self) -> None:
        tiny = float(np.finfo(self.dtype).tiny)  # a subnormal threshold is flushed to 0 by XLA's CPU kernels
        if self.clip_norm is not None:
            check_float("clip_norm", self.clip_norm, tiny, closed="both")
        if self.clip_value is not None:
            check_float("clip_value", self.clip_value, tiny, closed="both")
            if self.clip_norm is not None:
                raise XregInputError("Give one clipping: clip_norm (clip_grad_norm_) or clip_value (clip_grad_value_), not both.")
        norm_type = self.clip_norm_type
        if not (isinstance(norm_type, (int, float)) and not isinstance(norm_type, bool) and (norm_type == math.inf or 1 <= norm_type < 1e6)):
            raise XregInputError(f"The 'clip_norm_type' parameter must be a p in [1, 1e6) or inf. Got {norm_type!r} instead.")
        object.__setattr__(self, "clip_norm_type", float(norm_type))
        check_bool("clip_per_parameter", self.clip_per_parameter)
        check_bool("clip_error_if_nonfinite", self.clip_error_if_nonfinite)
        if self.clip_norm is None and (self.clip_norm_type != 2.0 or self.clip_per_parameter or self.clip_error_if_nonfinite):
            given = ("clip_norm_type" if self.clip_norm_type != 2.0 else "clip_per_parameter" if self.clip_per_parameter
                     else "clip_error_if_nonfinite")  # fmt: skip
            raise XregInputError(f"The '{given}' parameter shapes the clip_norm clipping; set clip_norm.")
        _codes(self, "naive_clip", clipping.CODES)

    def replace(self, **changes: Any) -> "ExperimentSpec":
        return dataclasses.replace(self, **changes)

    def __reduce__(self):
        """Pickled (a run sent to a worker process, :mod:`xreg.backends.remote`): its resolved fields, as they are."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        frozen = tuple(k for k, v in fields.items() if isinstance(v, MappingProxyType))
        return (_unpickled_spec, (type(self), {k: dict(v) if k in frozen else v for k, v in fields.items()}, frozen))

    def option(self, name: str) -> Any:
        return self.options[name]

    @property
    def clip_kind(self) -> str:
        """'' (no clipping), 'norm' (clip_grad_norm_) or 'value' (clip_grad_value_)."""
        return clipping.NORM if self.clip_norm is not None else clipping.VALUE if self.clip_value is not None else ""

    @property
    def decays(self) -> bool:
        """Some strength is > 0 (lam or a group's)."""
        return bool(self.lam) or any(v for _, v in self.group_decay)

    @property
    def momentum_free(self) -> bool:
        return optimizers.get(self.optimizer).momentum_free(self.options)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        out["schedule_options"] = _plain(dict(self.schedule_options))
        out.update({f: list(getattr(self, f)) for f in NAIVE_FIELDS})
        out["class_weight"] = None if self.class_weight is None else list(self.class_weight)
        if self.hidden is not None:  # one width as the number it was (the files written before deeper stacks)
            out["hidden"] = self.hidden[0] if len(self.hidden) == 1 else list(self.hidden)
        out["no_decay"] = list(self.no_decay)
        out["group_decay"] = {k: v for k, v in self.group_decay}
        return out


def _unpickled_spec(cls, fields: dict, frozen: tuple[str, ...]) -> "ExperimentSpec":
    spec = object.__new__(cls)  # the fields were checked and resolved when the spec was made
    for k, v in fields.items():
        object.__setattr__(spec, k, MappingProxyType(v) if k in frozen else v)
    return spec


@dataclass(frozen=True, eq=False)
class Dataset:
    """Training and test rows. ``y`` holds class labels 0..K-1 for the classifiers, any real for ``linear``."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    target: str = "y"
    image_shape: tuple[int, int, int] | None = None  # (channels, height, width) where each row is an image, C-major (digits: 1 x 8 x 8)

    def __post_init__(self) -> None:
        for label, arr, ndim in (
            ("X_train", self.X_train, 2),
            ("y_train", self.y_train, 1),
            ("X_test", self.X_test, 2),
            ("y_test", self.y_test, 1),
        ):
            if not isinstance(arr, np.ndarray) or arr.ndim != ndim:
                shape = getattr(arr, "shape", type(arr).__name__)
                raise XregInputError(f"The '{label}' array must be {ndim}-D. Got shape {shape} instead.")
            if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
                raise XregInputError(f"The '{label}' array must hold finite numbers (no NaN or inf).")
        problems = []
        if self.X_train.shape[0] != self.y_train.shape[0]:
            problems.append(f"X_train has {self.X_train.shape[0]} rows but y_train has {self.y_train.shape[0]}")
        if self.X_test.shape[0] != self.y_test.shape[0]:
            problems.append(f"X_test has {self.X_test.shape[0]} rows but y_test has {self.y_test.shape[0]}")
        if self.X_test.shape[1] != self.X_train.shape[1]:
            problems.append(f"X_test has {self.X_test.shape[1]} features but X_train has {self.X_train.shape[1]}")
        if len(self.feature_names) != self.X_train.shape[1]:
            problems.append(f"{len(self.feature_names)} feature names for {self.X_train.shape[1]} features")
        if self.X_train.shape[0] == 0:
            problems.append("no training rows")
        if problems:
            raise XregInputError("Inconsistent dataset: " + "; ".join(problems) + ".")

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        """K for class labels 0..K-1: one more than the largest label of either split."""
        return int(max(self.y_train.max(initial=0), self.y_test.max(initial=0))) + 1

    def check_for_dtype(self, dtype: str, targets: bool = False) -> None:
        """Refuse values ``dtype`` cannot hold (float32 overflows above 3.4e38), naming the first column."""
        big = float(np.finfo(np.dtype(dtype)).max)
        for X in (self.X_train, self.X_test):
            over = np.flatnonzero(np.max(np.abs(X), axis=0, initial=0.0) > big)
            if over.size:
                raise XregInputError(f"The feature '{self.feature_names[over[0]]}' holds values beyond {big:.3g}, "
                                     f"the largest {dtype}: it would be inf; scale it, or use float64.")  # fmt: skip
        if targets and max(np.max(np.abs(self.y_train), initial=0.0), np.max(np.abs(self.y_test), initial=0.0)) > big:
            raise XregInputError(f"The target '{self.target}' holds values beyond {big:.3g}, the largest {dtype}.")

    def check_for_model(self, model: str) -> None:
        """The classifiers need labels 0..K-1 (logistic: 0/1)."""
        if model == "linear":
            return
        for label, y in (("y_train", self.y_train), ("y_test", self.y_test)):
            values = np.unique(y)
            if not np.all((values >= 0) & (values == np.round(values))):
                shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
                need = "0/1 labels" if model == "logistic" else "class labels 0..K-1"
                raise XregInputError(
                    f"The {model} model needs {need}; {label} holds {{{shown}}}. "
                    "Map them first (the CLI's --map-labels sends the sorted classes to 0, 1, ...)."
                )
        models.check_labels(model, self.y_train, self.n_classes)


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Everything one backend recorded for one run.

    Arrays are float64 copies of what the backend computed in ``spec.dtype``.

    Attributes:
      params: parameter name -> (rows, *shape) array, in the model's (torch's) order and shapes; row 0
        is the initial value, row j the value after ``steps_at[j]`` steps (every step: rows = steps + 1).
      loss: (rows - 1,) mean data loss of the batch of step ``steps_at[j] + 1``, at the parameters of row j.
      penalty: (rows - 1,) regularization term at the same parameters (see conventions.penalty).
      train_loss, train_accuracy, test_accuracy: (epochs,) on the full splits after each epoch
        (accuracy is NaN for the linear model and for an empty test split).
      diverged_at: first 1-based step whose parameters or loss are not finite (the first recorded one),
        else None.
      steps_at: (rows,) steps done at each row: 0, K, 2K, ..., and the last step (``record_every`` K).
      buffers: buffer name -> (rows, *shape), as ``params`` (batch norm's running statistics and step
        count); compared like parameters (``flat`` holds both).
    """

    backend: str
    spec: ExperimentSpec
    params: Mapping[str, np.ndarray]
    loss: np.ndarray
    penalty: np.ndarray
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    diverged_at: int | None = None
    meta: Mapping[str, str] = field(default_factory=dict)
    steps_at: np.ndarray | None = None
    buffers: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.steps_at is None:
            rows = next(iter(self.params.values())).shape[0]
            object.__setattr__(self, "steps_at", np.arange(rows))

    @property
    def steps(self) -> int:
        """Steps the run was planned to take (the last row's step count)."""
        return int(self.steps_at[-1])

    @property
    def label(self) -> str:
        return run_label(self.backend, self.spec)

    @property
    def flat(self) -> np.ndarray:
        """(steps + 1, P): every parameter flattened and side by side, in name order, then every buffer."""
        rows = next(iter(self.params.values())).shape[0]
        return np.concatenate([p.reshape(rows, -1) for p in (*self.params.values(), *self.buffers.values())], axis=1)

    def at(self, step: int) -> dict[str, np.ndarray]:
        """The parameter tree after ``step`` steps (0 = initial)."""
        return {name: p[step] for name, p in self.params.items()}

    @property
    def final_params(self) -> dict[str, np.ndarray]:
        return self.at(-1)


def make_trajectory(backend: str, spec: ExperimentSpec, params: Mapping[str, Any], **arrays: Any) -> Trajectory:
    """Assemble a :class:`Trajectory` the same way for every backend (float64 copies, first non-finite step)."""
    f64 = {name: np.array(p, dtype=np.float64) for name, p in params.items()}
    buffers = {name: np.array(b, dtype=np.float64) for name, b in arrays.pop("buffers", {}).items()}
    rows = next(iter(f64.values())).shape[0]
    finite = np.ones(rows, bool)
    for p in (*f64.values(), *buffers.values()):
        finite &= np.isfinite(p.reshape(rows, -1)).all(axis=1)
    meta = arrays.pop("meta", {})
    steps_at = np.asarray(arrays.pop("steps_at", np.arange(rows)), dtype=np.int64)
    for key in ("loss", "penalty"):  # the loss at a row's parameters (rows - 1 of them): not finite = diverged there
        series = np.asarray(arrays.get(key, []), dtype=np.float64).reshape(-1)[: rows]
        finite[: series.size] &= np.isfinite(series)
    bad = np.flatnonzero(~finite)
    diverged = int(steps_at[bad[0]]) if bad.size else None
    train_loss = np.asarray(arrays.get("train_loss", []), dtype=np.float64).reshape(-1)
    over = np.flatnonzero(np.isinf(train_loss))  # an epoch's loss overflowed (NaN there means: epoch not kept)
    if over.size and spec.epochs and steps_at[-1] >= spec.epochs:
        at = int((over[0] + 1) * (steps_at[-1] // spec.epochs))  # the step that ended that epoch
        diverged = at if diverged is None else min(diverged, at)
    if diverged is not None and spec.epochs and steps_at[-1] >= spec.epochs:  # no metric of a non-finite model
        ends = (np.arange(spec.epochs) + 1) * (steps_at[-1] // spec.epochs)  # the steps that end each epoch
        for key in ("train_loss", "train_accuracy", "test_accuracy"):
            if key in arrays:
                series = np.array(arrays[key], dtype=np.float64).reshape(-1)
                series[: ends.size][ends[: series.size] >= diverged] = np.nan
                arrays[key] = series
    return Trajectory(
        backend=backend,
        spec=spec,
        params=f64,
        buffers=buffers,
        diverged_at=diverged,
        meta=dict(meta),
        steps_at=steps_at,
        **{k: np.array(v, dtype=np.float64) for k, v in arrays.items()},
    )


def run_label(backend: str, spec: ExperimentSpec, base_lam: float | None = None) -> str:
    label = f"{backend}/{spec.convention}"
    if spec.port != "exact":
        label += f"/{spec.port}"
    if base_lam is not None and spec.lam != base_lam:
        label += f"@lam={spec.lam:.6g}"
    return label
