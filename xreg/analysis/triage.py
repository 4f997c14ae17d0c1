"""Round-off triage: is a mismatch between two runs of the same rule a different rule, or round-off?

Two runs apply *the same rule* when the conventions table says their updates are equal as mathematics
(:func:`rule_key`: the same optimizer and options — shared by every run of a comparison — and the same
decay: coupled with equal coefficients on every group and on the same side of the clipping, or
decoupled with equal rates; for momentum-free SGD the two are one rule). Such a pair can still part
beyond the step-count tolerance when the run amplifies round-off (a chaotic run). Then the floor of
:mod:`xreg.analysis.floors` is measured in the same command, on the first run's backend against itself,
and the rule is::

    round-off (chaotic)  if  gap_k <= FLOOR_FACTOR * max(floor envelope_k, tol_k)  at every recorded step k
    mismatch             otherwise (the same rule, implemented differently: a bug on one side)

with the floor envelope the running maximum of how far rounding alone moved the run by step k. Measured:
same-rule pairs stay within 1.25x of the envelope (RMSprop at the optimum, raw breast_cancer), while a
change of lam or lr by one part in 1e9 exceeds it by 835x or more; FLOOR_FACTOR = 10 sits between.
A pair of different rules is a mismatch without a floor; only a mismatch changes the exit status.

Muon's bfloat16 Newton-Schulz is reproduced bit for bit only where xreg's emulation is torch's kernel
on this CPU (the probe of :mod:`xreg.backends.torch.kernels`). Where it is not, a same-rule pair of a
torch run against an emulating backend is judged the same way against the *kernel floor* (the torch
run against itself with the emulation's Newton-Schulz), and called ``round-off (bfloat16 kernel)``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from xreg.analysis import floors
from xreg.analysis.agreement import PairResult
from xreg.analysis.outcomes import RunOutcome, naive_cause
from xreg.core.spec import Dataset
from xreg.semantics import conventions

FLOOR_FACTOR = 10.0
ROUND_OFF = "round-off (chaotic)"
ROUND_OFF_KERNEL = "round-off (bfloat16 kernel)"
ROUND_OFFS = (ROUND_OFF, ROUND_OFF_KERNEL)


def _same(x: float) -> float:
    return float(f"{x:.12g}")  # lam*m/m and lam agree to an ulp: equal coefficients, as a key


def rule_key(outcome: RunOutcome, batch_sizes: tuple[int, ...], data: Dataset) -> tuple:
    """What makes the run's update, as mathematics (runs of one comparison share everything else)."""
    s = outcome.spec
    if s.port == "naive" and naive_cause(s, data) is not None:
        return ("naive", s.convention)
    c = conventions.get(s.convention)
    strengths = (s.lam,) + tuple(v for _, v in s.group_decay)
    if c.enters == conventions.NOWHERE or not any(strengths):
        return ("none",)
    if c.coupled:
        sizes = sorted(set(batch_sizes))
        if c.coefficient == "lam/m" and len(sizes) > 1:
            return ("per-batch", s.convention, strengths)
        sign = conventions.sign_under(s.convention, bool(s.options.get("maximize")))
        coeffs = tuple(_same(sign * conventions.coefficient(c.coefficient, v, sizes[0], s.lr)) for v in strengths)
        side = "after clipping" if c.enters == conventions.CLIPPED else "before clipping"
        return ("coupled", side if s.clip_norm is not None else "", coeffs)
    rates = tuple(_same(conventions.decoupled_rate(s.convention, v, s.lr, s.decoupled_scale)) for v in strengths)
    if s.momentum_free and s.clip_norm is None:  # w - lr_t*(g + s*w): L2 with weight_decay s
        return ("coupled", "", rates)
    return ("decoupled", rates)


def triage(outcomes: list[RunOutcome], pairs: list[PairResult], data: Dataset, batch_sizes: tuple[int, ...],
           on_run: Callable[[str, int], Callable[[int], None]] | None = None) -> list[PairResult]:  # fmt: skip
    """``pairs`` with each same-rule mismatch judged against the round-off floor, measured once per rule
    on the first finished run of that rule (the reference's, where it is one), on that run's backend."""
    by_label = {o.label: o for o in outcomes}
    keys = {o.label: rule_key(o, batch_sizes, data) for o in outcomes if o.trajectory is not None}
    measured: dict[tuple, floors.Floor] = {}
    out = []
    for p in pairs:
        if p.verdict != "mismatch" or p.note or keys[p.a] != keys[p.b]:
            out.append(p)
            continue
        key = keys[p.a]
        kernel_run = _kernel_side(by_label[p.a], by_label[p.b])
        if kernel_run is not None:  # torch's kernel against its emulation: the kernel floor, on the torch run
            fkey = ("kernel", kernel_run.label)
            if fkey not in measured:
                measured[fkey] = floors.measure(kernel_run.trajectory, data, "torch", on_run, perturbations=("ns_kernel",))
            verdict, floor = ROUND_OFF_KERNEL, measured[fkey]
        else:
            if key not in measured:
                first = next(by_label[label] for label, k in keys.items() if k == key)
                measured[key] = floors.measure(first.trajectory, data, first.request.backend, on_run)
            verdict, floor = ROUND_OFF, measured[key]
        within = within_floor(p.per_step, floor, p.tolerance)
        out.append(dataclasses.replace(p, verdict=verdict if within else "mismatch", floor=floor, same_rule=True))
    return out


def within_floor(gaps, floor: floors.Floor, tol, row: int | None = None) -> bool:
    """The rule: ``gap_k <= FLOOR_FACTOR * max(floor envelope_k, tol_k)`` at every recorded step k; with
    ``row``, ``gaps`` and ``tol`` are that one row's (a sweep keeps the final parameters only)."""
    envelope = floor.envelope if row is None else floor.envelope[row]
    return bool(np.all(np.asarray(gaps) <= FLOOR_FACTOR * np.maximum(envelope, tol)))


def _kernel_side(a: RunOutcome, b: RunOutcome) -> RunOutcome | None:
    """The torch run of a pair of torch against an emulating backend, where the run uses a kernel the
    emulation does not reproduce on this machine (the kernel probe); else None."""
    sides = [o for o in (a, b) if o.request.backend == "torch"]
    if len(sides) != 1:
        return None
    probe = kernel_probe(sides[0].spec)
    return sides[0] if probe is not None and not probe.exact else None


def kernel_probe(spec):
    """The torch backend's kernel probe for ``spec`` (None where nothing depends on a kernel, or torch is
    not installed)."""
    from xreg import backends, optimizers

    if not optimizers.get(spec.optimizer).bf16_kernel:
        return None  # nothing to probe: torch need not be imported for it
    try:
        return backends.kernel_probe("torch", spec)
    except backends.BackendUnavailable:
        return None
