"""One requested run and what came of it (a trajectory or the reason there is none), and why a naive port
drifts: what the runner (:mod:`xreg.analysis.runs`) makes and the triage (:mod:`xreg.analysis.triage`) reads."""

from __future__ import annotations

from dataclasses import dataclass

from xreg import backends, optimizers, schedules
from xreg.core.checks import XregInputError, check_choice
from xreg.core.spec import NAIVE_FIELDS, Dataset, ExperimentSpec, Trajectory
from xreg.core.structure import architecture, naive_layers, structure
from xreg.semantics import accumulation, clipping, layers, losses, resume


@dataclass(frozen=True)
class RunRequest:
    backend: str
    convention: str
    port: str = "exact"
    lam: float | None = None  # None: the base spec's lam
    skip: str | None = None  # why this run is listed but not made (e.g. its derived lam overflows)
    group_decay: tuple[tuple[str, float], ...] | None = None  # None: the base spec's (a derived run scales them as lam)

    def spec_for(self, base: ExperimentSpec) -> ExperimentSpec:
        """The run's full spec (validated: a bad combination raises XregInputError here)."""
        check_choice("backend", self.backend, backends.ALL)
        if self.port == "naive" and self.backend != "jax":
            raise XregInputError(f"Naive ports are optax chains: use backend 'jax', not {self.backend!r}.")
        lam = base.lam if self.lam is None or self.skip else self.lam
        # an exact run computes torch's layers and steps; a naive one the codes the base names (its layers, else every
        # one that acts: xreg.core.structure.naive_layers)
        naive = {f: getattr(base, f) if self.port == "naive" else () for f in NAIVE_FIELDS}
        spec = base.replace(convention=self.convention, port=self.port, lam=lam, **naive)
        if self.group_decay is not None and not self.skip:
            spec = spec.replace(group_decay=self.group_decay)
        if self.port == "naive":
            optimizers.check_naive(spec.optimizer, spec.convention)
        return spec


@dataclass(frozen=True, eq=False)
class RunOutcome:
    request: RunRequest
    spec: ExperimentSpec
    label: str
    trajectory: Trajectory | None = None
    error: str | None = None  # set when the backend is unavailable or failed

    @property
    def skipped(self) -> bool:
        return self.request.skip is not None

    @property
    def status(self) -> str:
        if self.skipped:
            return "skipped"
        if self.trajectory is None:
            return self.error or "failed"
        if "stopped" in self.trajectory.meta:  # torch's clip_grad_norm_ raised (error_if_nonfinite)
            return f"stopped at {self.trajectory.meta['stopped']}"
        if self.trajectory.diverged_at is not None:
            return f"diverged at step {self.trajectory.diverged_at}"
        return "ok"



def naive_cause(spec: ExperimentSpec, data: Dataset) -> str | None:
    """Why the naive port of ``spec`` drifts from torch: its optax alias, its flax layers and its optax
    schedule (None where all are exact)."""
    arch = architecture(spec, data)
    s = structure(spec, arch, data.n_train)
    why = [optimizers.naive_cause(spec.optimizer, spec.options, spec.convention, s.decays_everything)]
    why += [f"{code}: {layers.cause_text(code, arch, spec.dtype)}" for code in naive_layers(spec, arch)]  # each acts (checked there)
    why += [f"{code}: {schedules.cause_text(code, s.schedule, s.schedule_context)}" for code in s.naive_schedule]
    why += [f"{code}: {clipping.NAIVE[code].why}" for code in s.naive_clip]
    why += [f"{code}: {losses.NAIVE[code].why}" for code in arch.loss.naive]
    why += [f"{code}: {accumulation.NAIVE[code].why}" for code in s.naive_accumulate]
    why += [f"{code}: {resume.NAIVE[code].why}" for code in s.naive_resume]
    why = [w for w in why if w]
    return "; ".join(why) if why else None

