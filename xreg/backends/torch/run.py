"""PyTorch: the model's ``nn.Linear`` layers trained by the real ``torch.optim`` optimizer, its param
groups and the real ``lr_scheduler``. The recipe (:mod:`xreg.core.recipe`) is realized as a torch user
writes it:

* ``penalty`` (l2-loss): ``mean_loss + sum_g c_g/2*||w_g||^2`` in the objective, differentiated by autograd;
* ``decay`` before clipping (scratch): ``p.grad.add_(p, alpha=c_g)`` after ``backward()``;
* ``clip``: ``torch.nn.utils.clip_grad_norm_`` (each parameter alone with ``--clip-per-parameter``) or ``clip_grad_value_``;
* ``decay`` on the clipped gradient (torch): ``weight_decay=c_g`` of each decay group's param group;
* ``decay`` after the direction (decoupled): ``AdamW`` / ``decoupled_weight_decay=True`` where torch has
  it, else ``p.mul_(1 - lr*c_g)`` under ``no_grad`` just before ``step()``, where torch's own runs;
* ``direction`` + ``scale_by_lr``: ``optimizer.step()``; parameters no group decays sit in a group with
  ``weight_decay=0``.

Tensors are built in the run's dtype, and every call runs with torch's default dtype set to the run's
dtype (restored after): torch keeps NAdam's ``mu_product`` and ASGD's ``eta``/``mu`` in the *default*
dtype (``_get_scalar_dtype``, ``torch.as_tensor(python_float)``), so a float64 run is float64 throughout,
as a float64 torch program is. (With torch's own default, float32, those scalars are float32 numbers in a
float64 run: a relative 1e-8 that ``diagnose`` names.)
The single-tensor CPU path (``foreach=False``) is used unless the options ask for ``foreach`` or ``fused``
(the same rule, computed by other kernels: round-off apart).

Contract: ``init(structure, hparams, params0) -> State``; ``step(state, batch, hparams) -> State``
(pure: it works on a copy, through the optimizer's and scheduler's ``state_dict``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np
import torch

from xreg import models
from xreg.core.checks import XregInputError
from xreg.core import progress, recipe
from xreg.core.plan import Batch, make_plan, one_thread
from xreg.backends.torch import kernels
from xreg.core.spec import Dataset, ExperimentSpec, KernelProbe, Trajectory, make_trajectory
from xreg.core.structure import Structure, architecture, check_steppable, group_strengths, split
from xreg import optimizers
from xreg import schedules
from xreg.semantics import clipping, conventions

NAME = "torch"


ACTIVATION_MODULES = {"tanh": lambda: torch.nn.Tanh(), "relu": lambda: torch.nn.ReLU(), "gelu": lambda: torch.nn.GELU(),
                      "gelu-tanh": lambda: torch.nn.GELU(approximate="tanh")}  # fmt: skip


class MLP(torch.nn.Module):
    """The hidden blocks ``nn.Linear -> nn.BatchNorm1d | nn.LayerNorm -> activation -> dropout``, then
    ``out``: parameters and buffers named as :mod:`xreg.models` names them (``hidden.weight`` ...
    ``out.bias``; ``hidden1.``, ``norm1.``, ... for deeper stacks). The norms are torch's defaults
    (momentum 0.1, eps 1e-5). Dropout multiplies by the step's multipliers ``keep/(1-p)``, given
    (``nn.Dropout`` draws its own mask from torch's generator; these are drawn once for every backend)."""

    def __init__(self, arch: models.Architecture, dtype: torch.dtype):
        super().__init__()
        self.arch = arch
        for (dense, norm), (_, fan_in, width) in zip(arch.blocks, arch.layers):
            setattr(self, dense[:-1], torch.nn.Linear(fan_in, width, bias=arch.has_bias(dense), dtype=dtype))
            if arch.norm == "batch":
                setattr(self, norm[:-1], torch.nn.BatchNorm1d(width, dtype=dtype))
            elif arch.norm == "layer":
                setattr(self, norm[:-1], torch.nn.LayerNorm(width, dtype=dtype))
        self.out = torch.nn.Linear(arch.layers[-1][1], arch.n_outputs, dtype=dtype)
        self.act = ACTIVATION_MODULES[arch.activation]()

    def forward(self, x: torch.Tensor, drop: list[torch.Tensor] | None = None) -> torch.Tensor:
        for i, (dense, norm) in enumerate(self.arch.blocks):
            x = getattr(self, dense[:-1])(x)
            if self.arch.norm != "none":
                x = getattr(self, norm[:-1])(x)
            x = self.act(x)
            if drop is not None:
                x = x * drop[i]
        return self.out(x)


class CNN(torch.nn.Module):
    """``nn.Conv2d -> nn.BatchNorm2d | nn.LayerNorm([C, H', W']) -> activation -> nn.MaxPool2d | nn.AvgPool2d
    -> flatten -> dropout -> out``, on the rows viewed as (C_in, H, W) images; named as :mod:`xreg.models`."""

    def __init__(self, arch: models.Architecture, dtype: torch.dtype):
        super().__init__()
        c = self.spec = arch.conv
        self.arch = arch
        self.conv = torch.nn.Conv2d(c.image[0], c.channels, c.kernel, c.stride, c.padding, bias=arch.has_bias("conv."), dtype=dtype)
        if arch.norm == "batch":
            self.norm = torch.nn.BatchNorm2d(c.channels, dtype=dtype)
        elif arch.norm == "layer":
            self.norm = torch.nn.LayerNorm([c.channels, *c.out_hw], dtype=dtype)
        self.act = ACTIVATION_MODULES[arch.activation]()
        self.pool = (torch.nn.MaxPool2d if c.pool == "max" else torch.nn.AvgPool2d)(c.pool_size)
        self.out = torch.nn.Linear(c.features, arch.n_outputs, dtype=dtype)

    def forward(self, x: torch.Tensor, drop: list[torch.Tensor] | None = None) -> torch.Tensor:
        x = self.conv(x.reshape(x.shape[0], *self.spec.image))
        if self.arch.norm != "none":
            x = self.norm(x)
        x = self.pool(self.act(x)).flatten(1)
        if drop is not None:
            x = x * drop[0]
        return self.out(x)


def build_module(arch: models.Architecture, dtype: torch.dtype) -> torch.nn.Module:
    if arch.conv is not None:
        return CNN(arch, dtype)
    if arch.hidden is None:
        return torch.nn.Linear(arch.n_features, arch.n_outputs, dtype=dtype)
    return MLP(arch, dtype)


@functools.lru_cache(maxsize=None)
def loss_fn(head: str, loss: models.Loss = models.Loss()):
    """The head's torch loss on logits (m, K): BCEWithLogitsLoss / MSELoss on z[:, 0], CrossEntropyLoss on z (its
    ``weight`` made in the logits' dtype and device), with ``loss``'s reduction, weight and label_smoothing."""
    F = torch.nn.functional
    if head == "ce":
        w = loss.class_weight

        def ce(z, y):
            weight = None if w is None else torch.as_tensor(w, dtype=z.dtype, device=z.device)
            return F.cross_entropy(z, y.long(), weight=weight, reduction=loss.reduction, label_smoothing=loss.label_smoothing)

        return ce
    f = F.binary_cross_entropy_with_logits if head == "bce" else F.mse_loss
    return lambda z, y: f(z[:, 0], y, reduction=loss.reduction)


class State(NamedTuple):
    structure: Structure
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    hp: Mapping[str, Any]


def _steps(s: Structure) -> dict[str, recipe.Step]:
    """The recipe's penalty/decay step by where it stands (at most one: one convention per run)."""
    return {st.where: st for st in recipe.build(s) if st.name in ("penalty", "decay")}


def _torch_decay(s: Structure) -> tuple[str | None, bool]:
    """Which recipe place torch.optim's own ``weight_decay`` realizes, and whether to pass
    ``decoupled_weight_decay=True``."""
    opt = optimizers.get(s.optimizer)
    places = _steps(s)
    if not opt.takes_weight_decay:
        return None, False  # a decoupled decay is then a line of the loop (a coupled one is refused by the spec)
    if conventions.CLIPPED in places:
        return conventions.CLIPPED, False
    native_decoupled = conventions.get(opt.native_convention).enters == conventions.DIRECTION  # AdamW
    if conventions.DIRECTION in places and (opt.decoupled_flag or native_decoupled):
        return conventions.DIRECTION, opt.decoupled_flag
    return None, False


def _kwargs(opt: optimizers.Optimizer, flags: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The class's torch-named options: booleans and static ones from the structure, numbers traced."""
    kwargs = {k: flags[k] if isinstance(v, bool) or k in opt.static else options[k] for k, v in opt.defaults.items()
              if k not in optimizers.IMPLEMENTATION and k not in opt.xreg_only}  # fmt: skip
    if "foreach" in opt.common:
        kwargs["foreach"] = flags.get("foreach", False)  # the single-tensor loop unless the user asks for foreach
    if flags.get("fused"):
        kwargs["fused"] = True
    return kwargs


class Paired:
    """Muon on the 2-D parameters and its paired class on the rest, stepped as one optimizer (as a user
    steps the two in one loop)."""

    def __init__(self, *optimizers_: torch.optim.Optimizer):
        self.optimizers = optimizers_

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for o in self.optimizers for g in o.param_groups]

    def zero_grad(self) -> None:
        for o in self.optimizers:
            o.zero_grad()

    def step(self) -> None:
        for o in self.optimizers:
            o.step()


def make_optimizer(s: Structure, hp: Mapping[str, Any], model: torch.nn.Module) -> Any:
    """The torch.optim class with its torch-named options and one param group per decay group (Muon: its
    2-D parameters, and a second class for the rest)."""
    opt = optimizers.get(s.optimizer)
    flags = dict(s.flags)
    place, decoupled = _torch_decay(s)
    named = dict(model.named_parameters())
    form = _steps(s)[place].coefficient if place else None
    groups = []
    for names, lam in group_strengths(s, hp):
        wd = conventions.coefficient(form, lam, 1, hp["lr"]) if form else 0.0
        groups.append((names, wd))
    rest = tuple(n for n in s.arch.names if n not in s.decayed)
    if rest:
        groups.append((rest, 0.0))

    def build(o: optimizers.Optimizer, kwargs: dict[str, Any], keep) -> torch.optim.Optimizer | None:
        if o.decoupled_flag:
            kwargs["decoupled_weight_decay"] = decoupled or (o.name != s.optimizer and place == conventions.DIRECTION)
        gs = [{"params": [named[n] for n in names if keep(n)], **({"weight_decay": wd} if o.takes_weight_decay else {})}
              for names, wd in groups]  # fmt: skip
        gs = [g for g in gs if g["params"]]
        cls = o.torch_twin() if o.torch_twin is not None else getattr(torch.optim, o.torch_class)  # a Keras rule: its torch twin
        return cls(gs, lr=hp["lr"], **kwargs) if gs else None

    if not opt.two_d_only:
        return build(opt, _kwargs(opt, flags, hp["options"]), lambda n: True)
    matrix = lambda n: named[n].ndim == 2  # noqa: E731
    other = optimizers.get(flags["others"])
    pflags = dict(opt.paired_flags(s.flags))
    first = build(opt, _kwargs(opt, flags, hp["options"]), matrix)
    second = build(other, _kwargs(other, pflags, hp["options"]["paired"]), lambda n: not matrix(n))
    return Paired(*(o for o in (first, second) if o is not None))


@contextlib.contextmanager
def default_dtype(name: str):
    """torch's default dtype set to the run's (``name``) for the duration, then restored."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, name))
    try:
        yield
    finally:
        torch.set_default_dtype(before)


class _Schedulers:
    def __init__(self, scheds):
        self.scheds = scheds

    def step(self, *loss: float) -> None:
        for sc in self.scheds:
            sc.step(*loss)


def make_scheduler(s: Structure, optimizer: Any):
    """The real torch scheduler of ``s`` on ``optimizer`` (one per optimizer of a pair), or None."""
    if isinstance(optimizer, Paired):
        scheds = [make_scheduler(s, o) for o in optimizer.optimizers]
        return None if scheds[0] is None else _Schedulers(scheds)
    return schedules.torch_scheduler(s.schedule, dict(s.schedule_options), optimizer)


def init(s: Structure, hp: Mapping[str, Any], params0: Mapping[str, np.ndarray], buffers0: Mapping[str, np.ndarray] | None = None) -> State:
    with default_dtype(s.dtype):
        return _init(s, hp, params0, models.initial_buffers(s.arch) if buffers0 is None else buffers0)


def _init(s: Structure, hp: Mapping[str, Any], params0: Mapping[str, np.ndarray], buffers0: Mapping[str, np.ndarray]) -> State:
    dtype = getattr(torch, s.dtype)
    model = build_module(s.arch, dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.as_tensor(np.asarray(params0[name]), dtype=dtype))
        for name, b in model.named_buffers():  # num_batches_tracked stays torch's int64
            b.copy_(torch.as_tensor(np.asarray(buffers0[name])))
    optimizer = make_optimizer(s, hp, model)
    return State(s, model, optimizer, make_scheduler(s, optimizer), hp)


def _forward(model: torch.nn.Module, X: torch.Tensor, drop: list[torch.Tensor] | None) -> torch.Tensor:
    return model(X, drop) if isinstance(model, (MLP, CNN)) else model(X)


def _advance(state: State, epoch_end: bool, parts: list[tuple[torch.Tensor, torch.Tensor, Any]],
             epoch_loss: Callable[[], float] | None = None) -> tuple[float, float]:  # fmt: skip
    """One update in place (the model in train mode: batch norm moves its buffers); returns the batch loss
    and the recorded penalty. ``parts``: the step's (X, y, dropout multipliers per hidden block or None),
    one batch or the K micro-batches of an accumulated step, each back-propagated as ``(loss_j / K).backward()``
    before the one ``step()`` (the recorded loss: their mean). ``epoch_loss``: the loss ReduceLROnPlateau is given."""
    s, model, optimizer, hp = state.structure, state.model, state.optimizer, state.hp
    named = dict(model.named_parameters())
    places, m = _steps(s), sum(len(y) for _, y, _ in parts)
    groups = [([named[n] for n in names], lam) for names, lam in group_strengths(s, hp)]
    torch_place, _ = _torch_decay(s)
    losses = []
    with torch.enable_grad():
        optimizer.zero_grad()
        for X, y, drop in parts:
            data_loss = loss_fn(s.arch.head, s.arch.loss)(_forward(model, X, drop), y)
            with torch.set_grad_enabled(conventions.LOSS in places):  # the norms enter the graph only as a loss term
                sqs = [(lam, sum((p * p).sum() for p in ps)) for ps, lam in groups]
            objective = data_loss
            if conventions.LOSS in places:
                form = places[conventions.LOSS].coefficient
                for lam, sq in sqs:
                    objective = objective + conventions.l2_penalty(conventions.coefficient(form, lam, m, hp["lr"]), sq)
            (objective if len(parts) == 1 else objective / len(parts)).backward()
            losses.append(data_loss.item())
    with torch.no_grad():
        penalty = sum(float(conventions.penalty(s.convention, lam, m, sq.item())) for lam, sq in sqs)
        if conventions.GRADIENT in places:  # the scratch loop's (sum_i grad_i + lam*w)/m
            form = places[conventions.GRADIENT].coefficient
            for ps, lam in groups:
                for p in ps:
                    p.grad.add_(p, alpha=conventions.coefficient(form, lam, m, hp["lr"]))
        if s.clip == clipping.VALUE:
            torch.nn.utils.clip_grad_value_(model.parameters(), hp["clip_norm"], foreach=False)
        elif s.clip:
            try:
                for ps in ([p] for p in model.parameters()) if s.clip_per_parameter else [model.parameters()]:
                    torch.nn.utils.clip_grad_norm_(ps, hp["clip_norm"], norm_type=s.clip_norm_type, error_if_nonfinite=s.clip_error,
                                                   foreach=False)  # fmt: skip
            except RuntimeError as exc:  # error_if_nonfinite: torch's loop ends here
                if not s.clip_error:
                    raise
                raise clipping.Stopped(sum(losses) / len(losses), penalty) from exc
        if conventions.DIRECTION in places and torch_place != conventions.DIRECTION:
            form, lr_now = places[conventions.DIRECTION].coefficient, optimizer.param_groups[0]["lr"]
            for ps, lam in groups:
                for p in ps:
                    p.mul_(1 - lr_now * conventions.coefficient(form, lam, m, hp["lr"]))
        optimizer.step()
        if state.scheduler is not None and schedules.reads_loss(s.schedule):
            if epoch_end:  # a torch loop's scheduler.step(epoch_loss)
                state.scheduler.step(epoch_loss())
        elif state.scheduler is not None and (epoch_end or s.schedule_every == "step"):
            state.scheduler.step()
    return sum(losses) / len(losses), penalty


def _state_dict(o: Any) -> Any:
    """An optimizer's or a scheduler's state_dict (a pair's: the list of its parts')."""
    parts = getattr(o, "optimizers", None) or getattr(o, "scheds", None)
    return [p.state_dict() for p in parts] if parts is not None else o.state_dict()


def _load_state_dict(o: Any, saved: Any) -> None:
    parts = getattr(o, "optimizers", None) or getattr(o, "scheds", None)
    for p, sd in zip(parts, saved) if parts is not None else [(o, saved)]:
        p.load_state_dict(sd)


def resumed(state: State) -> State:
    """``state`` saved as a torch user saves a checkpoint (the model's, the optimizer's and the scheduler's
    state_dict through ``torch.save``) and loaded into a new model, optimizer and scheduler
    (``torch.load(weights_only=True)``; the scheduler is built before the optimizer's state is loaded, as
    torch's docs ask)."""
    import io

    blob = io.BytesIO()
    torch.save({"model": state.model.state_dict(), "optimizer": _state_dict(state.optimizer),
                "scheduler": None if state.scheduler is None else _state_dict(state.scheduler)}, blob)  # fmt: skip
    blob.seek(0)
    saved = torch.load(blob, weights_only=True)
    new = init(state.structure, state.hp, params_of(state), buffers_of(state))
    new.model.load_state_dict(saved["model"])
    _load_state_dict(new.optimizer, saved["optimizer"])
    if new.scheduler is not None:
        _load_state_dict(new.scheduler, saved["scheduler"])
    return new


def step(state: State, batch: Batch, hp: Mapping[str, Any]) -> State:
    """One update on one batch, on a copy of ``state`` (its model, optimizer and scheduler are untouched)."""
    with default_dtype(state.structure.dtype):
        return _step(state, batch, hp)


def _step(state: State, batch: Batch, hp: Mapping[str, Any]) -> State:
    check_steppable(state.structure)
    new = init(state.structure, hp, params_of(state), buffers_of(state))
    new.optimizer.load_state_dict(copy.deepcopy(state.optimizer.state_dict()))
    if state.scheduler is not None:
        new.scheduler.load_state_dict(state.scheduler.state_dict())
    dtype = getattr(torch, state.structure.dtype)
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
    parts = [(t(b.X), t(b.y), None if b.drop is None else [t(d) for d in b.drop]) for b in (batch.micro or (batch,))]
    _advance(new, batch.epoch_end, parts)
    return new


def params_of(state: State) -> dict[str, np.ndarray]:
    return {n: p.detach().double().cpu().numpy().copy() for n, p in state.model.named_parameters()}


def buffers_of(state: State) -> dict[str, np.ndarray]:
    return {n: b.detach().double().cpu().numpy().copy() for n, b in state.model.named_buffers()}


METRIC_BLOCK = 2**24  # values held at once (epochs x rows x a row's activations) when computing the per-epoch metrics


def _eval_loss(arch: models.Architecture, model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """The whole training set's mean data loss in eval mode at the model's parameters (the epoch's recorded loss),
    as a torch loop computes the loss it gives ReduceLROnPlateau."""
    model.eval()
    loss = loss_fn(arch.head, arch.loss)(_forward(model, X, None), y).item()
    model.train()
    return loss


def _epoch_metrics(arch: models.Architecture, model: torch.nn.Module, hist: Mapping[str, np.ndarray],
                   rows: np.ndarray, X: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Mean loss and accuracy on (X, y) at the recorded parameters and buffers ``hist[n][rows]``: torch's own
    forward in eval mode (batch norm by its running statistics, no dropout) and loss, vmapped over the
    epochs (``torch.func``) a block at a time, after the training loop rather than inside it (where they
    cost two forward passes per epoch)."""
    from torch.func import functional_call, vmap

    loss, acc = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
    if X.shape[0] == 0 or len(rows) == 0:
        return loss, acc
    lf = loss_fn(arch.head, arch.loss)
    block = max(1, METRIC_BLOCK // (X.shape[0] * arch.values_per_row))
    model.eval()
    for lo in range(0, len(rows), block):
        sel = rows[lo : lo + block]
        p = {n: torch.as_tensor(h[sel], dtype=torch.int64 if n.endswith("num_batches_tracked") else X.dtype, device=X.device)
             for n, h in hist.items()}  # fmt: skip
        z = vmap(lambda q: functional_call(model, q, (X,)))(p)
        loss[lo : lo + len(sel)] = vmap(lambda zz: lf(zz, y))(z).double().cpu().numpy()
        if models.HEADS[arch.head].classification:
            zn, yn = z.double().cpu().numpy(), y.double().cpu().numpy()
            acc[lo : lo + len(sel)] = [np.mean(models.correct(arch.head, ze, yn, np)) for ze in zn]
    model.train()
    return loss, acc


def check_device(device: str | None) -> None:
    """An input error now, before any run, where ``device`` asks for what torch does not have."""
    placement(device)


def placement(device: str | None):
    """A context for torch's device of ``device``: cuda for 'gpu' (an input error without one), as the
    default device of every tensor and module the run creates; nothing on the cpu (torch's default, and a
    device context costs ~1 us per torch call), and nothing for 'tpu' (no torch TPU backend is installed:
    a 'tpu' run keeps its torch side on the cpu)."""
    if device != "gpu":
        return contextlib.nullcontext()
    if not torch.cuda.is_available():
        raise XregInputError("--device gpu: torch sees no CUDA device here.")
    return torch.device("cuda")


def train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    small = spec.device != "gpu" and one_thread(spec, architecture(spec, data), data.n_train)
    with placement(spec.device), default_dtype(spec.dtype), kernels.newton_schulz_by(spec.ns_kernel), threads(1 if small else None):
        return _train(spec, data)


@contextlib.contextmanager
def threads(n: int | None):
    """torch's intra-op threads set to ``n`` for the duration (None: as they are), then restored."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def kernel_probe(spec: ExperimentSpec) -> KernelProbe | None:
    """Where ``spec`` runs a kernel the other backends emulate (Muon's bfloat16 Newton-Schulz): whether the
    emulation is that kernel on this machine (probed once). None: nothing of the run depends on one."""
    if not optimizers.get(spec.optimizer).bf16_kernel:
        return None
    if spec.device not in (None, "cpu"):  # the probe measures the CPU's kernels; a GPU's bfloat16 matmul is its own
        return KernelProbe(kernels.WHAT, False, f"the {spec.device}'s bfloat16 matmul kernels", "not probed: xreg emulates torch's CPU kernels")
    return kernels.muon_probe()


def _train(spec: ExperimentSpec, data: Dataset) -> Trajectory:
    if spec.naive_layers or spec.port != "exact":
        raise ValueError(f"The torch backend is the reference (naive ports are flax/optax: jax); got port={spec.port!r}, "
                         f"naive_layers={spec.naive_layers!r}.")  # fmt: skip
    data.check_for_model(spec.model)
    s, hp = split(spec, data)
    dtype = getattr(torch, spec.dtype)
    t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
    X, y, Xt, yt = t(data.X_train), t(data.y_train), t(data.X_test), t(data.y_test)
    plan = make_plan(spec, data.n_train, s.arch)
    state = init(s, hp, plan.params0)
    kept = plan.recorded(spec.record_every)  # steps done at each kept row
    names, hist = _history(state, len(kept))
    named = {**dict(state.model.named_parameters()), **dict(state.model.named_buffers())}
    loss_hist, pen_hist = np.full(len(kept) - 1, np.nan), np.full(len(kept) - 1, np.nan)
    train_loss, train_acc, test_acc = (np.full(spec.epochs, np.nan) for _ in range(3))
    done, stopped = 0, None  # steps whose parameters are all finite; the step torch raised at (error_if_nonfinite)
    with torch.no_grad():
        parts = []
        for j, (epoch, rows) in enumerate(plan.batches()):  # batches; an optimizer step after each group of accumulate
            idx = torch.from_numpy(np.array(rows))
            drop = plan.drop_at(j, len(rows))
            parts.append((X[idx], y[idx], None if drop is None else [t(d) for d in drop]))
            if len(parts) < plan.accumulate:
                continue
            k = j // plan.accumulate
            epoch_end = (j + 1) % plan.n_batches == 0
            row = int(np.searchsorted(kept, k))
            step_loss, step_pen, stopped = _taken(state, epoch_end, parts, X, y, k + 1)
            parts = []
            if kept[row] == k:
                loss_hist[row], pen_hist[row] = step_loss, step_pen
            if stopped:
                break
            now = {n: named[n].detach().double().cpu().numpy() for n in names}
            finite = all(bool(np.all(np.isfinite(v))) for v in now.values())
            after = int(np.searchsorted(kept, k + 1))  # the first kept row at or after this step
            if kept[after] == k + 1 or not finite:
                for n in names:
                    hist[n][after] = now[n]  # a divergence shows at the next kept row
            if not finite:
                break
            done = k + 1
            if s.resume_at == done:  # a checkpoint saved and loaded into a new model, optimizer and scheduler
                state = resumed(state)
                named = {**dict(state.model.named_parameters()), **dict(state.model.named_buffers())}
            progress.tick(done)
        ends = plan.epoch_ends() + 1  # steps done after each epoch
        shown = np.flatnonzero(np.isin(ends, kept) & (ends <= done))  # epochs whose parameters were kept
        at = np.searchsorted(kept, ends[shown])
        train_loss[shown], train_acc[shown] = _epoch_metrics(s.arch, state.model, hist, at, X, y)
        test_acc[shown] = _epoch_metrics(s.arch, state.model, hist, at, Xt, yt)[1]
    return make_trajectory(
        NAME, spec, {n: hist[n] for n in s.arch.names}, buffers={n: hist[n] for n in s.arch.buffer_shapes}, loss=loss_hist, penalty=pen_hist, train_loss=train_loss, train_accuracy=train_acc,
        test_accuracy=test_acc, steps_at=kept,
        meta={"torch": str(torch.__version__), "device": str(X.device), "threads": str(torch.get_num_threads()),
              "default_dtype": str(torch.get_default_dtype()), **({"stopped": stopped} if stopped else {})},
    )  # fmt: skip


def _history(state: State, rows: int) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    """The parameter and buffer names, and their kept rows (NaN), the first the start this run computes from
    (params0 rounded to the run's dtype)."""
    shapes = {**state.structure.arch.shapes, **state.structure.arch.buffer_shapes}
    hist = {n: np.full((rows, *shape), np.nan) for n, shape in shapes.items()}
    named = {**dict(state.model.named_parameters()), **dict(state.model.named_buffers())}
    for n in shapes:
        hist[n][0] = named[n].detach().double().cpu().numpy()
    return tuple(shapes), hist


def _taken(state: State, epoch_end: bool, parts, X: torch.Tensor, y: torch.Tensor, step: int) -> tuple[float, float, str | None]:
    """The step's loss and penalty, and why the run stops before it (None: it was taken): torch's clip_grad_norm_
    raised (error_if_nonfinite=True)."""
    try:
        return (*_advance(state, epoch_end, parts, lambda: _eval_loss(state.structure.arch, state.model, X, y)), None)
    except clipping.Stopped as stop:
        return stop.loss, stop.penalty, f"step {step}: {clipping.STOPPED}"
