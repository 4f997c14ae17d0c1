"""A run split in two: the hashable *structure* (what is compiled) and the numeric *hyperparameters*.

``split(spec, data)`` returns both. Two runs with the same structure share one compiled JAX program;
everything in ``hparams`` is a traced input (lr, the decay strength of every group, betas, momentum,
eps, the clip norm, ...), so sweeping them never recompiles.

Structure: the architecture (model and shapes), the optimizer and its boolean flags (``nesterov``,
``amsgrad``, ``momentum > 0``, ...), the convention and its decoupled scale, the decay groups (which
parameter names each strength applies to), the dtype, the schedule (kind and options), whether the
gradient is clipped, and the port. Hyperparameters: ``{"lr", "decay": {group: strength}, "options":
{torch name: number}, "clip_norm"}``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from dataclasses import dataclass
from typing import Any, Mapping

from xreg import models
from xreg.core.checks import XregInputError
from xreg.core.plan import batch_sizes
from xreg.core.spec import Dataset, ExperimentSpec
from xreg import optimizers
from xreg import schedules
from xreg.semantics import accumulation, clipping, conventions, losses, resume
from xreg.semantics import layers as layer_conventions

DEFAULT_GROUP = "lam"
ACTIVATION_BUDGET_BYTES = 4 * 2**30  # what one step's forward and backward pass may hold


@dataclass(frozen=True)
class Structure:
    arch: models.Architecture
    optimizer: str
    flags: tuple[tuple[str, bool], ...]
    convention: str
    decoupled_scale: str
    groups: tuple[tuple[str, tuple[str, ...]], ...]  # decay group -> the parameter names it decays
    dtype: str
    schedule: str
    schedule_options: tuple[tuple[str, Any], ...]  # for the run: every default filled (xreg.schedules.for_run)
    clip: str  # '' (none), 'norm' (clip_grad_norm_) or 'value' (clip_grad_value_)
    port: str
    schedule_every: str = "epoch"
    batches: int = 1  # optimizer steps per epoch (its batches, or their groups of accumulate)
    calls: int = 1  # the scheduler's calls over the run (epochs, or steps)
    naive_schedule: tuple[str, ...] = ()  # the naive schedule codes the run computes (a naive JAX port)
    clip_norm_type: float = 2.0
    clip_per_parameter: bool = False
    clip_error: bool = False  # torch's error_if_nonfinite: a step whose total norm is nan or inf stops the run
    naive_clip: tuple[str, ...] = ()  # the naive clipping codes the run computes (a naive JAX port)
    accumulate: int = 1  # micro-batches per optimizer step
    resume_at: int | None = None  # optimizer steps after which every backend saves, rebuilds and goes on
    naive_resume: tuple[str, ...] = ()  # the resume bugs the run computes (a naive JAX port)
    naive_accumulate: tuple[str, ...] = ()  # the naive accumulation codes the run computes (a naive JAX port)
    cycled: str = ""  # the optimizer option a cycling scheduler moves each step ('momentum', or beta1 of 'betas'); '' none

    @property
    def schedule_context(self) -> schedules.Context:
        """The schedule's view of the run: its calls, optimizer steps per epoch and when it steps (no lr: the options
        that default to it are filled already)."""
        return schedules.Context(self.calls, self.batches, self.schedule_every)

    def flag(self, name: str) -> bool:
        return dict(self.flags).get(name, False)

    @property
    def decayed(self) -> tuple[str, ...]:
        """Every parameter some group decays, in model order."""
        names = {n for _, members in self.groups for n in members}
        return tuple(n for n in self.arch.names if n in names)

    @property
    def decays_everything(self) -> bool:
        return len(self.groups) == 1 and self.decayed == self.arch.names


def matches(name: str, pattern: str) -> bool:
    """fnmatch on parameter names; a pattern without a dot also matches the last name part
    ('bias' matches 'bias', 'hidden.bias' and 'out.bias')."""
    return fnmatch.fnmatchcase(name, pattern) or ("." not in pattern and fnmatch.fnmatchcase(name.rsplit(".", 1)[-1], pattern))


def decay_groups(spec: ExperimentSpec, names: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Which parameters each strength decays: ``--no-decay`` patterns first (no group), then the first
    matching ``--group-decay`` pattern, else the default group (``lam``). Empty groups are dropped."""
    for pattern in spec.no_decay + tuple(p for p, _ in spec.group_decay):
        if not any(matches(n, pattern) for n in names):
            raise XregInputError(
                f"The pattern {pattern!r} matches no parameter of the {spec.model} model ({', '.join(names)})."
            )
    members: dict[str, list[str]] = {DEFAULT_GROUP: []}
    for pattern, _ in spec.group_decay:
        members.setdefault(pattern, [])
    for n in names:
        if any(matches(n, p) for p in spec.no_decay):
            continue
        group = next((p for p, _ in spec.group_decay if matches(n, p)), DEFAULT_GROUP)
        members[group].append(n)
    return tuple((g, tuple(ns)) for g, ns in members.items() if ns)


def architecture(spec: ExperimentSpec, data: Dataset) -> models.Architecture:
    n_classes = 1 if spec.model == "linear" else data.n_classes
    conv = {k: getattr(spec, k) for k in models.CONV_OPTIONS}
    arch = models.architecture(spec.model, data.n_features, n_classes, spec.hidden, spec.activation, spec.norm, spec.dropout,
                               conv, data.image_shape)  # fmt: skip
    sizes = batch_sizes(spec, data.n_train)
    rows = max(sizes)
    need = rows * arch.values_per_row * 8 * 2  # x 2: a backend's copy and its gradient's
    if need > ACTIVATION_BUDGET_BYTES:
        raise XregInputError(
            f"One step of the {arch.model} model would hold {need / 2**30:.3g} GiB of activations ({rows} rows x "
            f"{arch.values_per_row} values x 8 bytes x 2), over {ACTIVATION_BUDGET_BYTES / 2**30:g} GiB: use smaller batches "
            "(--batch-size), fewer or narrower layers (--hidden, --channels), or a smaller --kernel-size or --padding."
        )
    naive = tuple(c for c in naive_layers(spec, arch) if c != "init")  # init: the start, drawn by the plan
    if naive:
        arch = dataclasses.replace(arch, naive=naive)
    loss = loss_of(spec, arch, data.n_classes)
    if not loss.plain:
        arch = dataclasses.replace(arch, loss=loss)
    per_row = arch.conv.out_hw[0] * arch.conv.out_hw[1] if arch.conv is not None else 1  # values a channel's statistics see per row
    if arch.norm == "batch" and min(sizes) * per_row < 2:
        raise XregInputError(
            f"Batch norm needs at least 2 values per channel in every batch (torch: 'Expected more than 1 value per channel "
            f"when training'); {data.n_train} training rows in batches of {spec.batch_size or data.n_train} leave a batch of "
            f"{min(sizes)}: choose another --batch-size, or --norm layer."
        )
    return arch


def _refuse(flag: str, codes: tuple[str, ...], why_not: Any) -> None:
    """One input error for the first naive code that ``why_not(code)`` says cannot apply to the run."""
    for code in codes:
        why = why_not(code)
        if why is not None:
            raise XregInputError(f"{flag} {code}: {why}.")


def loss_of(spec: ExperimentSpec, arch: models.Architecture, n_classes: int) -> models.Loss:
    """The run's loss form: class weights and smoothing for CrossEntropyLoss only (one weight per class); the
    naive loss codes (a naive port's), each one changing this run."""
    if (spec.class_weight is not None or spec.label_smoothing) and arch.head != "ce":
        what = "--class-weight" if spec.class_weight is not None else "--label-smoothing"
        raise XregInputError(f"{what} is CrossEntropyLoss's: the softmax head (--model softmax, or an mlp or cnn on more than "
                             f"2 classes); the {arch.model} model here has the {arch.head} head.")  # fmt: skip
    if spec.class_weight is not None and len(spec.class_weight) != n_classes:
        raise XregInputError(f"--class-weight gives {len(spec.class_weight)} weights for the {n_classes} classes of the data.")
    naive = spec.naive_loss if spec.port == "naive" else ()
    form = (spec.class_weight, spec.label_smoothing, spec.loss_reduction)
    _refuse("--naive-loss", naive, lambda code: losses.blocked(code, arch.head, *form))
    return models.Loss(spec.loss_reduction, spec.class_weight, spec.label_smoothing, naive)


def naive_layers(spec: ExperimentSpec, arch: models.Architecture) -> tuple[str, ...]:
    """The naive layer conventions a run computes: those it names, else, for a naive port, every one that
    acts on its model (``port='naive'`` extends to the layers); none for an exact run that names none."""
    if spec.port == "naive" and not spec.naive_layers:
        return layer_conventions.acting(arch, spec.dtype)
    for code in spec.naive_layers:  # named ones must change something here, and run
        why = layer_conventions.blocked(code, arch)
        if why is None and code != "init" and not layer_conventions.CONVENTIONS[code].acts(arch, spec.dtype):
            acting = ", ".join(layer_conventions.acting(arch, spec.dtype)) or "none"
            why = f"it changes nothing in this {spec.dtype} {arch.model} model (the ones that act here: {acting})"
        if why is not None:
            raise XregInputError(f"--naive-layer {code}: {why}.")
    return spec.naive_layers


def check_steppable(s: Structure) -> None:
    """A backend's ``step(state, batch, hparams)`` can take this structure's steps: not ReduceLROnPlateau's, which
    reads the whole training set's loss at each epoch's end (a batch does not carry it; ``train`` runs them)."""
    if schedules.reads_loss(s.schedule):
        raise ValueError(f"{s.schedule} is stepped with the epoch's loss over the whole training set: a backend's "
                         "train() runs it, step(state, batch, hparams) cannot.")


def schedule_context(spec: ExperimentSpec, batches: int) -> schedules.Context:
    """What the run's schedule reads of it: its scheduler calls (epochs, or steps), batches per epoch, lr."""
    calls = spec.epochs * batches if spec.schedule_every == "step" else spec.epochs
    return schedules.Context(calls, batches, spec.schedule_every, spec.lr)


def naive_schedule(spec: ExperimentSpec, ctx: schedules.Context, options: Mapping[str, Any]) -> tuple[str, ...]:
    """The naive schedule codes a run computes: none for an exact run; for a naive one the codes it names
    (each must change this run's learning rates), or with 'all' every one that does."""
    if spec.port != "naive" or not spec.naive_schedule:
        return ()
    acting = schedules.acting(spec.schedule, options, ctx, spec.dtype)
    if "all" in spec.naive_schedule:
        if not acting:
            raise XregInputError(f"--naive-schedule all: no naive schedule difference acts on this {spec.schedule} run.")
        return acting
    for code in spec.naive_schedule:
        why = schedules.blocked(code, spec.schedule, options, ctx)
        if why is None and code not in acting:
            why = f"it changes nothing in this run (the ones that act here: {', '.join(acting) or 'none'})"
        if why is not None:
            raise XregInputError(f"--naive-schedule {code}: {why}.")
    return spec.naive_schedule


def cycled_options(spec: ExperimentSpec, schedule_options: Mapping[str, Any]) -> tuple[Mapping[str, Any], str]:
    """The optimizer's options with the momentum a cycling scheduler sets (its largest: the structure's flags, SGD's
    momentum > 0, follow it), and the option it moves ('' where none); torch refuses cycle_momentum on an optimizer
    with neither momentum nor betas."""
    if not schedules.cycles_momentum(spec.schedule, schedule_options):
        return spec.options, ""
    opt = optimizers.get(spec.optimizer)
    key = schedules.momentum_option(opt.defaults)
    if key is None or opt.two_d_only:
        why = ("torch: 'optimizer must support momentum or beta1 with `cycle_momentum` option enabled'" if key is None else
               "Muon and its paired class would cycle two options")  # fmt: skip
        raise XregInputError(f"{spec.schedule}'s cycle_momentum=True (torch's default) moves the optimizer's momentum; "
                             f"{opt.source}: {why}. Pass cycle_momentum=false.")
    top = max(schedule_options["base_momentum"], schedule_options["max_momentum"])
    return {**spec.options, key: (top, spec.options[key][1]) if key == "betas" else top}, key


def accumulated_steps(spec: ExperimentSpec, sizes: tuple[int, ...]) -> int:
    """Optimizer steps per epoch: the epoch's batches in groups of ``accumulate`` (they must split evenly)."""
    if len(sizes) % spec.accumulate:
        raise XregInputError(f"--accumulate {spec.accumulate} groups an epoch's batches: its {len(sizes)} batches of "
                             f"{sizes[0]} rows do not split into groups of {spec.accumulate} (choose a --batch-size or --accumulate "
                             f"that divides them).")  # fmt: skip
    return len(sizes) // spec.accumulate


def naive_accumulate(spec: ExperimentSpec, sizes: tuple[int, ...]) -> tuple[str, ...]:
    """The naive accumulation codes a run computes (a naive port's; each must change the run)."""
    if spec.port != "naive":
        return ()
    K = spec.accumulate
    unequal = any(len(set(sizes[i : i + K])) > 1 for i in range(0, len(sizes), K))
    _refuse("--naive-accumulate", spec.naive_accumulate, lambda code: accumulation.blocked(code, K, unequal))
    return spec.naive_accumulate


def resume_at(spec: ExperimentSpec, steps: int) -> int | None:
    """The step to resume at, inside the run (1 to steps - 1)."""
    if spec.resume_at is not None and spec.resume_at >= steps:
        raise XregInputError(f"--resume-at {spec.resume_at}: the run has {steps} optimizer steps; resume inside it (1 to {steps - 1}).")
    return spec.resume_at


def naive_resume(spec: ExperimentSpec) -> tuple[str, ...]:
    """The resume bugs a run computes (a naive port's; each must change the run)."""
    if spec.port != "naive":
        return ()
    opt = optimizers.get(spec.optimizer)
    has_state, counts, scheduled = not opt.plain(spec.options), opt.counts_steps(spec.options), spec.schedule != schedules.CONSTANT
    _refuse("--naive-resume", spec.naive_resume, lambda code: resume.blocked(code, spec.resume_at, has_state, counts, scheduled))
    return spec.naive_resume


def naive_clip(spec: ExperimentSpec) -> tuple[str, ...]:
    """The naive clipping codes a run computes (a naive port's; each must apply to the run)."""
    if spec.port != "naive":
        return ()
    coupled = conventions.get(spec.convention).enters == conventions.CLIPPED and spec.decays
    shape = (spec.clip_kind, spec.clip_norm_type, spec.clip_per_parameter)
    _refuse("--naive-clip", spec.naive_clip, lambda code: clipping.blocked(code, *shape, coupled))
    return spec.naive_clip


def structure(spec: ExperimentSpec, arch: models.Architecture, n_train: int) -> Structure:
    """``n_train``: the training rows (they make the batches of an epoch: the schedule's calls)."""
    opt = optimizers.get(spec.optimizer)
    sizes = batch_sizes(spec, n_train)
    batches = accumulated_steps(spec, sizes)
    ctx = schedule_context(spec, batches)
    options = schedules.for_run(spec.schedule, spec.schedule_options, ctx)
    cycled, moved = cycled_options(spec, dict(options))
    return Structure(
        arch=arch,
        optimizer=spec.optimizer,
        flags=opt.structure_flags(cycled),
        convention=spec.convention,
        decoupled_scale=spec.decoupled_scale,
        groups=decay_groups(spec, arch.names),
        dtype=spec.dtype,
        schedule=spec.schedule,
        schedule_options=options,
        clip=spec.clip_kind,
        port=spec.port,
        schedule_every=spec.schedule_every,
        batches=batches,
        calls=ctx.calls,
        naive_schedule=naive_schedule(spec, ctx, dict(options)),
        clip_norm_type=spec.clip_norm_type,
        clip_per_parameter=spec.clip_per_parameter,
        clip_error=spec.clip_error_if_nonfinite,
        naive_clip=naive_clip(spec),
        accumulate=spec.accumulate,
        naive_accumulate=naive_accumulate(spec, sizes),
        resume_at=resume_at(spec, spec.epochs * batches),
        naive_resume=naive_resume(spec),
        cycled=moved,
    )


def hparams(spec: ExperimentSpec) -> dict[str, Any]:
    """The numeric hyperparameter tree of ``spec`` (Python floats; backends cast to the run's dtype)."""
    decay = {DEFAULT_GROUP: spec.lam, **{p: v for p, v in spec.group_decay}}
    return {
        "lr": spec.lr,
        "decay": decay,
        "options": optimizers.get(spec.optimizer).hparams(spec.options),
        "clip_norm": {"norm": spec.clip_norm, "value": spec.clip_value}.get(spec.clip_kind, 0.0),  # the clipping's threshold
    }


def split(spec: ExperimentSpec, data: Dataset) -> tuple[Structure, dict[str, Any]]:
    return structure(spec, architecture(spec, data), data.n_train), hparams(spec)


def group_strengths(s: Structure, hp: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """(parameter names, strength) of each decay group."""
    return [(names, hp["decay"][g]) for g, names in s.groups]
