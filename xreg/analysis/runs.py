"""Which runs a comparison makes, running them, and pairing their trajectories.

A run is a backend, a convention, a port ('exact' or 'naive') and optionally its own ``lam`` (to show
that a rescaled convention reproduces the reference). Every run shares the base spec's data, init,
batch order and hyperparameters. The first run is the reference the table compares against.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field
from typing import Callable

from xreg import backends, models
from xreg.analysis.agreement import PairResult, compare_pair
from xreg.analysis.outcomes import RunOutcome, RunRequest, naive_cause  # noqa: F401 (re-exported)
from xreg.analysis.triage import triage
from xreg.backends import BackendUnavailable
from xreg.backends import remote as remotes
from xreg.backends.remote import RemoteError
from xreg.core.checks import XregInputError
from xreg.core import progress
from xreg.core.plan import RECORD_BUDGET_GIB, batch_sizes, check_record_budget, load_npz
from xreg.core.spec import NAIVE_FIELDS, Dataset, ExperimentSpec, run_label
from xreg.core.structure import architecture, split, structure
from xreg import optimizers
from xreg.semantics import conventions


@dataclass(frozen=True, eq=False)
class Comparison:
    spec: ExperimentSpec
    data: Dataset
    batch_sizes: tuple[int, ...]
    outcomes: list[RunOutcome]
    pairs: list[PairResult] = field(default_factory=list)
    architecture: models.Architecture | None = None

    @property
    def reference(self) -> RunOutcome:
        """The first run that finished (the first requested, unless its backend was unavailable)."""
        return next((o for o in self.outcomes if o.trajectory is not None), self.outcomes[0])

    def pair(self, a: str, b: str) -> PairResult:
        for p in self.pairs:
            if {p.a, p.b} == {a, b}:
                return p
        raise KeyError((a, b))

    @property
    def all_match(self) -> bool:
        """Every run finished and every pair is within the match tolerance."""
        return self.runs_ok and all(p.verdict == "match" for p in self.pairs)

    @property
    def rules_match(self) -> bool:
        """Every run finished and no pair differs in its rule (a match, or round-off of the same rule):
        the exit status of ``xreg compare``."""
        return self.runs_ok and all(p.verdict != "mismatch" for p in self.pairs)

    @property
    def runs_ok(self) -> bool:
        """Every run made finished without diverging (a run skipped with its reason is not a failure)."""
        return all(o.trajectory is not None and o.trajectory.diverged_at is None for o in self.outcomes if not o.skipped)


def default_requests(spec: ExperimentSpec, batch_sizes: tuple[int, ...], data: Dataset) -> list[RunRequest]:
    """torch (reference), jax exact, jax l2-loss, numpy, numpy scratch and, where one lam makes it equal,
    numpy scratch with that lam; plus the naive optax port where it differs from torch."""
    opt = optimizers.get(spec.optimizer)
    native = opt.default_convention
    if opt.framework == "keras":  # Keras itself the reference; its rule's twins in torch, JAX and NumPy beside it
        return [RunRequest(b, native) for b in ("keras", "torch", "jax", "numpy")]
    reqs = [RunRequest("torch", native), RunRequest("jax", native)]
    if native == "coupled":
        reqs.append(RunRequest("jax", "l2-loss"))
    reqs.append(RunRequest("numpy", native))
    if native == "coupled":
        reqs.append(RunRequest("numpy", "scratch"))
        # under maximize no scratch lam reproduces torch (the sign differs); nor under clipping (the scratch term is clipped)
        same = not spec.options.get("maximize") and spec.clip_norm is None and spec.clip_value is None
        lam = conventions.lam_for_torch_weight_decay("scratch", spec.lam, batch_sizes, spec.lr) if same else None
        if lam is not None and not math.isfinite(lam):
            reqs.append(RunRequest("numpy", "scratch", lam=lam, skip=(
                f"the scratch lam that equals torch's weight_decay={spec.lam:g} is lam*m = {spec.lam:g}*{batch_sizes[0]}, "
                "beyond the largest float")))  # fmt: skip
        elif lam is not None and lam != spec.lam:  # lam 0 (or m = 1): the scratch run above is that run already
            groups = tuple((p, conventions.lam_for_torch_weight_decay("scratch", v, batch_sizes, spec.lr)) for p, v in spec.group_decay)
            if all(v is not None and math.isfinite(v) for _, v in groups):  # every strength scaled as lam, or the run is not one
                reqs.append(RunRequest("numpy", "scratch", lam=lam, group_decay=groups if groups else None))
    if native in opt.naive_conventions and naive_cause(spec.replace(convention=native, port="naive"), data) is not None:
        reqs.append(RunRequest("jax", native, port="naive"))  # (a port of another convention is asked for by name)
    return reqs


def requests_from(
    spec: ExperimentSpec,
    batch_sizes: tuple[int, ...],
    data: Dataset,
    backend_names: list[str] | None,
    convention_names: list[str] | None,
    naive: bool = False,
) -> list[RunRequest]:
    """The CLI's run set: defaults, or every backend x every convention given (in the order given)."""
    if not backend_names and not convention_names:
        reqs = default_requests(spec, batch_sizes, data)
        if naive and not any(r.port == "naive" for r in reqs):
            ported = optimizers.naive_convention(spec.optimizer, optimizers.get(spec.optimizer).default_convention)
            if not any(r.convention == ported for r in reqs):  # the port beside torch in its own convention (Rprop: L2 in the loss)
                reqs.append(RunRequest("torch", ported))
            reqs.append(RunRequest("jax", ported, port="naive"))
        return reqs
    native = optimizers.get(spec.optimizer).default_convention
    bs = backend_names or list(backends.NAMES)
    cs = list(dict.fromkeys(conventions.canonical(c) for c in convention_names)) if convention_names else [native]
    reqs = [RunRequest(b, c) for c, b in itertools.product(cs, bs)]
    if naive:
        reqs += [RunRequest("jax", c, port="naive") for c in cs]
    seen: list[RunRequest] = []
    for r in reqs:
        if r not in seen:
            seen.append(r)
    return seen


def check(spec: ExperimentSpec, data: Dataset) -> None:
    """Every input error that needs the data (labels, patterns, the .npz start, values the dtype cannot
    hold, an optimizer torch cannot step for this many steps) before any training."""
    data.check_for_model(spec.model)
    data.check_for_dtype(spec.dtype, targets=spec.model == "linear")
    optimizers.get(spec.optimizer).check_run(spec.options, spec.lr, spec.epochs * len(batch_sizes(spec, data.n_train)))
    arch = architecture(spec, data)
    structure(spec, arch, data.n_train)  # decay patterns that match no parameter, the schedule's options for the run
    if any(getattr(spec, f) for f in NAIVE_FIELDS if f != "naive_layers"):  # each named naive difference applies and acts
        split(spec.replace(port="naive"), data)
    if spec.init_from is not None:
        load_npz(spec.init_from, arch)


def labels_of(spec: ExperimentSpec, requests: list[RunRequest], specs: list[ExperimentSpec] | None = None) -> list[str]:
    """The label of each requested run, as the table and the pairs will name it (known before any run)."""
    specs = specs if specs is not None else [r.spec_for(spec) for r in requests]
    labels: list[str] = []
    for req, run_spec in zip(requests, specs):
        label = run_label(req.backend, run_spec, spec.lam) if not req.skip else f"{req.backend}/{req.convention}@lam={req.lam:g}"
        if label in labels:  # two runs that print alike (lams equal to 6 digits) stay two names
            label += f"#{sum(x.split('#')[0] == label for x in labels) + 1}"
        labels.append(label)
    return labels


def run_all(spec: ExperimentSpec, data: Dataset, requests: list[RunRequest],
            on_run: Callable[[str, int], Callable[[int], None]] | None = None,
            max_memory_gib: float = RECORD_BUDGET_GIB, parallel: bool | None = None) -> Comparison:  # fmt: skip
    """Validate every request, train each run, then compare every pair of finished runs. ``on_run(label,
    total_steps)`` gives each run a listener of its steps done (:mod:`xreg.core.progress`), e.g. a progress bar.
    The runs' records (and two round-off floor runs) must fit in ``max_memory_gib``, checked before any run.
    ``parallel``: the torch runs in a child process beside the others (:func:`remote_backend`; None: where
    that is worth it)."""
    if not requests:
        raise XregInputError("Nothing to run: no backend/convention pair was requested.")
    check(spec, data)
    specs = [r.spec_for(spec) for r in requests]  # all input errors surface before any training
    arch, sizes = architecture(spec, data), batch_sizes(spec, data.n_train)
    made = sum(not r.skip for r in requests)
    n_values = sum(math.prod(s) for s in (*arch.shapes.values(), *arch.buffer_shapes.values()))
    check_record_budget(spec.epochs * len(sizes), spec.record_every, n_values, made, max_memory_gib, spare=2)
    far = remote_backend(spec, requests, spec.epochs * len(sizes) // spec.record_every * n_values, parallel, data)
    remote = None
    if far is None:
        remotes.discard("torch")  # started ahead by the program, but these runs are better made here
    else:
        try:
            remote = remotes.take(far)  # its framework loads there while the checks below and the other runs go on here
        except remotes.Lost:
            far = None  # no child process here (a process limit, say): every run in this process
    try:
        for name in dict.fromkeys(r.backend for r in requests if r.backend != far):
            try:
                backends.check_device(name, spec)
            except BackendUnavailable:
                pass  # reported as unavailable with the run
        outcomes = _train_each(data, requests, specs, labels_of(spec, requests, specs), sizes, on_run, remote)
    finally:
        if remote is not None:
            remote.close()
    finished = [o for o in outcomes if o.trajectory is not None]
    pairs = [
        compare_pair(a.trajectory, b.trajectory, labels=(a.label, b.label))
        for a, b in itertools.combinations(finished, 2)
    ]
    pairs = triage(outcomes, pairs, data, sizes, on_run)
    return Comparison(spec, data, sizes, outcomes, pairs, arch)


REMOTE_RECORD_VALUES = 2**24  # recorded values of one run (128 MB of float64) up to which it is sent between processes
REMOTE_DATA_BYTES = 64 * 2**20  # the dataset's bytes up to which it is sent (once) to the child


def remote_backend(spec: ExperimentSpec, requests: list[RunRequest], recorded_values: int, parallel: bool | None,
                   data: Dataset | None = None) -> str | None:  # fmt: skip
    """The backend whose runs go to a child process, or None: torch, where the comparison has runs of
    another backend to make meanwhile, on the cpu (a device is checked here, before any run). Where
    ``parallel`` is None, only where the program started torch's child ahead (its import is what is saved;
    a caller's repeated comparisons would each pay for a new one), and each run's records and the data are
    small enough to send cheaply (a copy of each is held on both sides for a moment)."""
    made = {r.backend for r in requests if not r.skip}
    if parallel is False or "torch" not in made or len(made) < 2 or spec.device is not None:
        return None
    big = data is not None and sum(a.nbytes for a in (data.X_train, data.y_train, data.X_test, data.y_test)) > REMOTE_DATA_BYTES
    if parallel is None and (not remotes.started("torch") or "torch" in sys.modules or recorded_values > REMOTE_RECORD_VALUES or big):
        return None
    return "torch"


def _train_each(data, requests, specs, labels, sizes, on_run, remote) -> list[RunOutcome]:
    """Each request's outcome, in order; the remote backend's runs are handed over first and collected last."""
    listen = lambda label, spec: on_run(label, spec.epochs * len(sizes)) if on_run else None  # noqa: E731
    for i, (req, run_spec, label) in enumerate(zip(requests, specs, labels)):
        if remote is not None and req.backend == remote.name and not req.skip:
            remote.submit(i, run_spec, data, listen(label, run_spec))
    outcomes: list[RunOutcome | None] = []
    for i, (req, run_spec, label) in enumerate(zip(requests, specs, labels)):
        if req.skip:
            outcomes.append(RunOutcome(req, run_spec, label, error=f"skipped: {req.skip}"))
        elif remote is not None and req.backend == remote.name:
            outcomes.append(None)
        else:
            with progress.reporting(listen(label, run_spec)):
                outcomes.append(_outcome(req, run_spec, label, lambda: _train_here(req.backend, run_spec, data)))
    for i, (req, run_spec, label) in enumerate(zip(requests, specs, labels)):
        if outcomes[i] is None:
            try:
                outcomes[i] = _outcome(req, run_spec, label, lambda: remote.result(i))
            except remotes.Lost:  # the child ended before it loaded torch: the run is made here
                with progress.reporting(listen(label, run_spec)):
                    outcomes[i] = _outcome(req, run_spec, label, lambda: _train_here(req.backend, run_spec, data))
    return outcomes


def _train_here(name: str, spec: ExperimentSpec, data: Dataset):
    """One run in this process: a compiled one in a worker thread, so that Ctrl-C ends it within a second."""
    if backends.compiled(name):
        return progress.interruptible(lambda: backends.train(name, spec, data))
    return backends.train(name, spec, data)


def _outcome(req: RunRequest, run_spec: ExperimentSpec, label: str, train: Callable[[], object]) -> RunOutcome:
    try:
        return RunOutcome(req, run_spec, label, train())
    except BackendUnavailable as exc:
        return RunOutcome(req, run_spec, label, error=f"unavailable: {exc}")
    except remotes.Lost:
        raise
    except RemoteError as exc:
        kind = "unavailable" if exc.kind == "unavailable" else f"failed: {exc.kind}"
        return RunOutcome(req, run_spec, label, error=f"{kind}: {exc}")
    except Exception as exc:  # one backend's failure must not lose the others
        return RunOutcome(req, run_spec, label, error=f"failed: {type(exc).__name__}: {exc}")
