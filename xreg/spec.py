"""Framework-free shared types: what to run (:class:`ExperimentSpec`), on what (:class:`Dataset`), and
what a run produced (:class:`Trajectory`). Everything is validated once, here, at construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from xreg import conventions, optimizers, schedules
from xreg.checks import XregInputError, check_bool, check_choice, check_float, check_int

MODELS = ("logistic", "linear")
DTYPES = ("float64", "float32")
INITS = ("zeros", "normal", "constant")
PORTS = ("exact", "naive")
DECOUPLED_SCALES = ("lr", "schedule")


@dataclass(frozen=True)
class ExperimentSpec:
    """One training experiment, independent of framework.

    Attributes:
      model: 'logistic' (mean binary cross-entropy on logits) or 'linear' (mean squared error).
      optimizer: a torch.optim name in lower case (see :mod:`xreg.optimizers`).
      lr: base learning rate, > 0.
      lam: regularization strength, >= 0, read through ``convention``.
      convention: how ``lam`` enters the update (see :mod:`xreg.conventions`).
      options: optimizer hyperparameters by their torch names; torch defaults fill the rest.
      decay_bias: whether the bias is regularized too (torch and the classic scratch loop do).
      decoupled_scale: 'lr' (decay times the scheduled lr, torch/optax) or 'schedule' (times the
        schedule multiplier only, Loshchilov & Hutter); only read by the 'decoupled' convention.
      epochs: passes over the training rows.
      batch_size: rows per batch; None = full batch. The last short batch is kept (drop_last=False).
      shuffle, seed: one permutation per epoch from ``seed``, generated once and shared by all backends.
      dtype: 'float64' or 'float32' for data, parameters and optimizer state.
      init: 'zeros'; 'normal' (N(0, init_scale^2) from ``seed``, shared by all backends); or
        'constant' (every parameter equal to ``init_scale``).
      init_ulps: move every initial parameter this many float64 ulps up (a diagnostic: how much does
        the trajectory amplify a round-off-sized change? see ``compare.ulp_floor``).
      schedule, schedule_options: per-epoch learning-rate schedule (see :mod:`xreg.schedules`).
      clip_norm: if set, clip the data gradient to this global norm, as torch's clip_grad_norm_.
      port: 'exact' reproduces torch; 'naive' is the obvious optax alias a user writes first (jax only).
    """

    model: str = "logistic"
    optimizer: str = "sgd"
    lr: float = 0.05
    lam: float = 0.1
    convention: str = "torch"
    options: Mapping[str, Any] = field(default_factory=dict)
    decay_bias: bool = True
    decoupled_scale: str = "lr"
    epochs: int = 1000
    batch_size: int | None = None
    shuffle: bool = False
    seed: int = 0
    dtype: str = "float64"
    init: str = "zeros"
    init_scale: float = 0.1
    init_ulps: int = 0
    schedule: str = "constant"
    schedule_options: Mapping[str, Any] = field(default_factory=dict)
    clip_norm: float | None = None
    port: str = "exact"

    def __post_init__(self) -> None:
        check_choice("model", self.model, MODELS)
        opt = optimizers.get(self.optimizer)
        check_float("lr", self.lr, 0.0, closed="neither")
        check_float("lam", self.lam, 0.0)
        check_choice("convention", self.convention, conventions.NAMES)
        check_bool("decay_bias", self.decay_bias)
        check_choice("decoupled_scale", self.decoupled_scale, DECOUPLED_SCALES)
        check_int("epochs", self.epochs, 1)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1)
        check_bool("shuffle", self.shuffle)
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("init", self.init, INITS)
        check_float("init_scale", self.init_scale)
        check_int("init_ulps", self.init_ulps, 0, 1000)
        if self.clip_norm is not None:
            check_float("clip_norm", self.clip_norm, 0.0, closed="neither")
        check_choice("port", self.port, PORTS)
        # Store the resolved forms: torch defaults filled in, every value checked.
        object.__setattr__(self, "options", opt.resolve(dict(self.options)))
        object.__setattr__(
            self, "schedule_options", schedules.resolve(self.schedule, dict(self.schedule_options), self.epochs)
        )
        if opt.native_convention == "decoupled" and self.convention == "torch":
            raise XregInputError(
                f"The optimizer '{self.optimizer}' decays decoupled (torch.optim.{opt.torch_class}); "
                "use convention 'decoupled', or optimizer 'adam' for coupled weight decay."
            )

    def replace(self, **changes: Any) -> "ExperimentSpec":
        return dataclasses.replace(self, **changes)

    def option(self, name: str) -> Any:
        return self.options[name]

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["options"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        out["schedule_options"] = dict(self.schedule_options)
        return out


@dataclass(frozen=True, eq=False)
class Dataset:
    """Training and test rows. ``y`` is 0/1 for the logistic model, any real for the linear one."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    target: str = "y"

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

    def check_for_model(self, model: str) -> None:
        """The logistic model needs labels in {0, 1}."""
        if model != "logistic":
            return
        for label, y in (("y_train", self.y_train), ("y_test", self.y_test)):
            values = np.unique(y)
            if not np.all(np.isin(values, (0.0, 1.0))):
                shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
                raise XregInputError(
                    f"The logistic model needs 0/1 labels; {label} holds {{{shown}}}. "
                    "Map them first (the CLI's --map-labels sends the smaller class to 0, the larger to 1)."
                )


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Everything one backend recorded for one run.

    Arrays are float64 copies of what the backend computed in ``spec.dtype``.

    Attributes:
      weight: (steps + 1, d) weight after each step; row 0 is the initial value.
      bias: (steps + 1, 1) bias after each step.
      loss: (steps,) mean data loss of the batch used at each step, at the parameters before it.
      penalty: (steps,) regularization term at the same parameters (see conventions.penalty).
      train_loss, train_accuracy, test_accuracy: (epochs,) on the full splits after each epoch
        (accuracy is NaN for the linear model and for an empty test split).
      diverged_at: first 1-based step whose parameters or loss are not finite, else None.
    """

    backend: str
    spec: ExperimentSpec
    weight: np.ndarray
    bias: np.ndarray
    loss: np.ndarray
    penalty: np.ndarray
    train_loss: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    diverged_at: int | None = None
    meta: Mapping[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.loss.shape[0])

    @property
    def label(self) -> str:
        return run_label(self.backend, self.spec)

    @property
    def params(self) -> np.ndarray:
        """(steps + 1, d + 1): weight and bias side by side."""
        return np.concatenate([self.weight, self.bias], axis=1)


def run_label(backend: str, spec: ExperimentSpec, base_lam: float | None = None) -> str:
    label = f"{backend}/{spec.convention}"
    if spec.port != "exact":
        label += f"/{spec.port}"
    if base_lam is not None and spec.lam != base_lam:
        label += f"@lam={spec.lam:.6g}"
    return label
