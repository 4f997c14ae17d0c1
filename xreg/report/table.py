"""A :class:`Comparison` as a text table, with the reason behind every difference and setup hazards."""

from __future__ import annotations

import math

import numpy as np

from xreg.analysis import agreement, triage
from xreg.analysis.runs import Comparison, RunOutcome, naive_cause
from xreg import optimizers
from xreg.semantics import conventions

_NOT_SET = "-"


def update_formula(outcome: RunOutcome) -> str:
    """One line: how lam enters, then the optimizer step on the regularized gradient g."""
    spec = outcome.spec
    if spec.port == "naive":
        return "naive optax alias: " + outcome.trajectory.meta.get("chain", "") if outcome.trajectory else "naive"
    conv = conventions.CONVENTIONS[spec.convention].formula
    opt = optimizers.get(spec.optimizer)
    if opt.plain(spec.options):
        step = "w <- w - lr*g"
    elif opt.own_step_size:  # Adafactor: the step size is its own (min(lr, 1/sqrt(t)) times rms(w))
        step = f"w <- w - {opt.torch_class}(g, w, lr)"
    else:
        step = f"w <- w - lr*{opt.torch_class}(g)"
    return f"{conv}; {step}"


def torch_equivalent(c: Comparison, outcome: RunOutcome) -> conventions.TorchEquivalent:
    s = outcome.spec
    return conventions.torch_weight_decay(
        s.convention,
        s.lam,
        c.batch_sizes,
        s.lr,
        optimizer=s.optimizer,
        momentum_free=s.momentum_free,
        momentum=float(s.options.get("momentum", 0.0)),
        decoupled_scale=s.decoupled_scale,
        maximize=bool(s.options.get("maximize")),
        takes_weight_decay=optimizers.get(s.optimizer).takes_weight_decay,
        clipped=s.clip_norm is not None or s.clip_value is not None,
    )


def _buffers_only(a, b, pair) -> str:
    """Where two runs' parameters agree and only batch norm's running statistics part: said, since only the
    eval-mode forward (and the test accuracy) reads them."""
    if not a.buffers or pair.verdict == "match":
        return ""
    rows = min(len(a.steps_at), len(b.steps_at))
    gap = max(float(np.nanmax(np.abs(a.params[n][:rows] - b.params[n][:rows]), initial=0.0)) for n in a.params)
    if gap > pair.final_tolerance:
        return ""
    return (f" (the parameters agree to {gap:.1e}: only the running statistics differ, which the eval-mode forward and the "
            "test accuracy read)")


def explain(c: Comparison, other: RunOutcome) -> str:
    """Why ``other`` differs from (or equals) the reference run, in one line."""
    ref = c.reference
    if other.skipped:
        return f"not run: {other.request.skip}"
    if other is ref or other.trajectory is None or ref.trajectory is None:
        return ""
    pair = c.pair(ref.label, other.label)
    if pair.note:
        return pair.note
    if other.spec.port == "naive":
        cause = naive_cause(other.spec, c.data)
        if cause and pair.verdict == "match":  # e.g. clip-eps where no step was clipped: named, never claimed as the cause
            return f"matches the reference: what the naive port computes otherwise changes nothing this run reaches ({cause})"
        return (cause or "the stock optax alias is exact here") + _buffers_only(ref.trajectory, other.trajectory, pair)
    if pair.verdict == "match":
        return ""
    if pair.floor is not None:  # a same-rule pair, judged against the round-off floor (xreg.analysis.triage)
        gap = f"the same rule, parting from step {pair.first_divergence_step} by {pair.max_abs_diff:.2e}"
        if pair.verdict == triage.ROUND_OFF:
            return f"{gap}: round-off amplified by the run, as {pair.floor.describe()}"
        if pair.verdict == triage.ROUND_OFF_KERNEL:
            return (f"{gap}: torch's bfloat16 kernel on this CPU rounds Newton-Schulz's sums elsewhere than xreg's "
                    f"emulation, as {pair.floor.describe()}")  # fmt: skip
        return (f"{gap}, beyond the round-off floor ({pair.floor.describe()}): the same rule is computed differently "
                "(a bug on one side)")  # fmt: skip
    eq_ref, eq_other = torch_equivalent(c, ref), torch_equivalent(c, other)
    if eq_other.weight_decay is None or eq_ref.weight_decay is None:
        return eq_other.note
    s = other.spec
    fix = conventions.lam_for_torch_weight_decay(s.convention, eq_ref.weight_decay, c.batch_sizes, s.lr, s.decoupled_scale)
    same_rule = s.optimizer == ref.spec.optimizer and s.options == ref.spec.options
    groups = " (and each --group-decay strength scaled alike)" if s.group_decay else ""
    hint = f"; {s.convention} lam={fix:.6g}{groups} reproduces the reference" if fix is not None and math.isfinite(fix) and same_rule else ""
    return f"{eq_other.note}, the reference uses weight_decay={eq_ref.weight_decay:.4g}{hint}"


def hazards(c: Comparison) -> list[str]:
    """Warnings about the setup itself, independent of any backend (one line per distinct problem)."""
    by_factor: dict[float, list[str]] = {}
    for o in c.outcomes:
        if o.skipped:
            continue
        s = o.spec
        f = conventions.decay_factor(s.convention, s.lam, s.lr, min(c.batch_sizes), s.momentum_free, s.decoupled_scale)
        if f is not None and f <= 0:
            by_factor.setdefault(f, []).append(o.label)
    out = [
        f"the decay factor 1 - lr*lam = {f:.4g} <= 0 flips the sign of w every step "
        f"(expect oscillation or divergence) in {', '.join(labels)}"
        for f, labels in by_factor.items()
    ]
    unstable = [(o.label, first, last) for o in c.outcomes if (grown := loss_growth(o)) is not None for first, last in [grown]]
    if unstable:
        label, first, last = max(unstable, key=lambda u: u[2] / u[1])
        others = f" (and {len(unstable) - 1} more runs)" if len(unstable) > 1 else ""
        out.append(f"unstable: the training loss of {label}{others} grew from {first:.4g} to {last:.4g} (x{last / first:.3g}): "
                   "the lr is too large for this data's scale; lower --lr, or --standardize the features")  # fmt: skip
    return out


UNSTABLE_GROWTH = 100.0  # a training loss this many times its start: the run is unstable, whatever the pair verdict


def loss_growth(o: RunOutcome) -> tuple[float, float] | None:
    """(first batch loss, final training loss) of a run whose loss grew UNSTABLE_GROWTH-fold, else None."""
    t = o.trajectory
    if t is None or t.loss is None or not len(t.loss) or not len(t.train_loss):
        return None
    first = float(t.loss[0])
    finite = t.train_loss[np.isfinite(t.train_loss)]
    if not finite.size:  # no epoch's loss: the last batch loss recorded (a run that stopped or overflowed at once)
        finite = t.loss[np.isfinite(t.loss)]
    if not finite.size:
        return None
    last = float(finite[-1])
    return (first, last) if first > 0 and last > UNSTABLE_GROWTH * first else None


def kernel_notes(c: Comparison) -> list[str]:
    """Where a torch run uses a kernel the other backends emulate (Muon's bfloat16 Newton-Schulz), whether
    the emulation is that kernel here, and so how its pairs are judged (one line)."""
    torch_runs = [o for o in c.outcomes if o.request.backend == "torch" and o.trajectory is not None]
    probe = triage.kernel_probe(torch_runs[0].spec) if torch_runs and len(c.outcomes) > 1 else None
    if probe is None:
        return []
    judged = ("its pairs are judged by the match tolerance" if probe.exact else
              f"torch-vs-emulation pairs are judged against the kernel floor ('{triage.ROUND_OFF_KERNEL}' within it)")
    return [f"{probe.describe()}: {judged}"]


def _fmt(x: float | None, spec: str = ".3e") -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return _NOT_SET
    if spec.endswith("f") and abs(x) >= 1e6:  # a fixed-point column stays narrow for a huge value
        return format(x, ".4e")
    return format(x, spec)


HEAD = ["run", "convention", "update", "final loss", "train acc", "test acc", "max |dw| vs ref", "verdict", "torch wd equiv"]


def _short_status(status: str) -> str:
    """A run's status as the table's verdict cell (its first words: the whole reason is a note below)."""
    return status if len(status) <= 24 else status.split(":")[0]


def rows(c: Comparison, fmt_long: bool = True) -> tuple[list[str], list[list[str]]]:
    """The table's header and one row of strings per run (``fmt_long``: a failed run's whole reason in its
    verdict cell; else its first words, the reason listed below the table)."""
    ref = c.reference
    out = []
    for o in c.outcomes:
        t = o.trajectory
        if t is None:
            out.append([o.label, o.spec.convention, update_formula(o), _NOT_SET, _NOT_SET, _NOT_SET, _NOT_SET,
                        o.status if fmt_long else _short_status(o.status), _NOT_SET])  # fmt: skip
            continue
        if o is ref:
            status = o.status if fmt_long else _short_status(o.status)
            dev, verdict = "(reference)", status if o.status != "ok" else "reference"
        elif ref.trajectory is None:
            dev, verdict = _NOT_SET, o.status
        else:
            p = c.pair(ref.label, o.label)
            dev = _fmt(p.max_abs_diff)
            verdict = p.verdict if p.first_divergence_step is None or p.verdict in triage.ROUND_OFFS else f"{p.verdict} from step {p.first_divergence_step}"
        eq = torch_equivalent(c, o) if o.spec.port == "exact" else None
        final_loss = t.train_loss[-1] if t.diverged_at is None else math.nan
        out.append([o.label, o.spec.convention, update_formula(o), _fmt(final_loss, ".6f"),
                    _fmt(t.train_accuracy[-1], ".4f"), _fmt(t.test_accuracy[-1], ".4f"), dev, verdict,
                    _fmt(eq.weight_decay, ".4g") if eq else _NOT_SET])  # fmt: skip
    return list(HEAD), out


FORMATS = ("table", "markdown", "csv")
WIDTH = 100


def _grid(head: list[str], body: list[list[str]], fmt: str, width: int) -> str:
    if fmt == "markdown":
        esc = lambda v: str(v).replace("|", "\\|")  # noqa: E731
        return "\n".join(["| " + " | ".join(esc(h) for h in head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(esc(v) for v in r) + " |" for r in body])
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([head, *body])
        return buf.getvalue().rstrip("\n")
    import io

    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1), collapse_padding=True)
    keep = [i for i, h in enumerate(head) if h not in ("convention", "update")]  # the updates are listed below the table
    short = {"final loss": "loss", "train acc": "train", "test acc": "test", "max |dw| vs ref": "max |dw|", "torch wd equiv": "torch wd"}
    for i in keep:
        t.add_column(short.get(head[i], head[i]), no_wrap=True, overflow="fold")
    for r in body:
        t.add_row(*(str(r[i]) for i in keep))
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False, soft_wrap=False, highlight=False).print(t)
    return "\n".join(line.rstrip() for line in buf.getvalue().rstrip("\n").splitlines())


def table(c: Comparison, fmt: str = "table", width: int = WIDTH) -> str:
    """The comparison as a table (rich, ``width`` columns, the formula column wrapped; or Markdown, or CSV)
    plus the tolerance, warnings, and one line per explained difference."""
    head, body = rows(c, fmt_long=fmt != "table")
    notes = [f"  {o.label}: {why}" for o in c.outcomes if (o.trajectory is not None or o.skipped) and (why := explain(c, o))]
    if fmt == "table":
        notes += [f"  {o.label}: {o.status}" for o in c.outcomes if (o.trajectory is None or "stopped" in o.trajectory.meta)
                  and not o.skipped and o.status != _short_status(o.status)]  # fmt: skip
    out = [_grid(head, body, fmt, width)]
    if fmt == "csv":
        return out[0]
    if fmt == "table":  # each run's update, once per distinct formula
        updates: dict[str, list[str]] = {}
        for o, r in zip(c.outcomes, body):
            if not o.skipped:
                updates.setdefault(r[2], []).append(o.label)
        out += ["", "updates:"] + [f"  {formula}   ({', '.join(labels)})" for formula, labels in updates.items()]
        if step := step_text(c.spec):
            out.append(f"  every run: {step}")
    out += ["", _tolerance_line(c)] + kernel_notes(c)
    out += [f"warning: {h}" for h in hazards(c)]
    if notes:
        out += ["why runs differ from the reference:"] + notes
    return "\n".join(out)


def step_text(s) -> str:
    """The rest of the training step, where it is not torch's plain loop: the loss, accumulation, clipping, the
    schedule and a resume, as torch spells them ('' for a plain step)."""
    from xreg import schedules
    from xreg.semantics import clipping

    parts = []
    if s.loss_reduction != "mean" or s.class_weight is not None or s.label_smoothing:
        kw = [f"reduction={s.loss_reduction!r}"] if s.loss_reduction != "mean" else []
        kw += [f"weight={list(s.class_weight)}"] if s.class_weight is not None else []
        kw += [f"label_smoothing={s.label_smoothing:g}"] if s.label_smoothing else []
        parts.append(f"loss({', '.join(kw)})")
    if s.accumulate > 1:
        parts.append(f"(loss/{s.accumulate}).backward() for {s.accumulate} micro-batches a step")
    if s.clip_kind:
        parts.append(clipping.text(s.clip_kind, s.clip_norm if s.clip_kind == clipping.NORM else s.clip_value, s.clip_norm_type,
                                   s.clip_per_parameter, s.clip_error_if_nonfinite))  # fmt: skip
    if s.schedule != schedules.CONSTANT:
        given = " with the epoch's loss (the whole training set's, eval mode)" if schedules.reads_loss(s.schedule) else ""
        parts.append(f"{schedules.text(s.schedule, s.schedule_options)} stepped per {s.schedule_every}{given}")
    if s.resume_at is not None:
        parts.append(f"saved and resumed after step {s.resume_at}")
    return "; ".join(parts)


def _tolerance_line(c: Comparison) -> str:
    e = agreement.eps(c.spec.dtype)
    ref = c.reference.label
    finals = [p.final_tolerance for p in c.pairs if ref in (p.a, p.b)]
    at_end = f"; {max(finals):.3g} at the last step against the reference" if finals else ""
    return (
        f"match tolerance: |dw_k| <= {agreement.TOLERANCE_FACTOR:g} * eps * sum_j<=k (|w_j| + |w_j - w_j-1|)  "
        f"({c.spec.dtype} eps = {e:.3g}{at_end})"
    )
