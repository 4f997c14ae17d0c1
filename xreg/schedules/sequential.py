"""SequentialLR (members one after another, each restarted at its milestone) and ChainedScheduler (every
member stepped at every call, their factors multiplied), of the member classes in :data:`MEMBERS`.

The members are written ``Name(key=value, ...)``; an option whose xreg default is the number of calls
(``T_max``) defaults to the member's own span (SequentialLR) or the run's calls (ChainedScheduler).

optax: ``join_schedules([...], boundaries=milestones)`` (each member counts from its milestone, as torch's
restart ``_update_lr(0)`` does); ChainedScheduler as the product ``lr * prod(member(count) / lr)``. The port
of a linear warm-up then a cosine as ``optax.warmup_cosine_decay_schedule(..., decay_steps=T_max)`` ends the
cosine early: optax's decay_steps counts the warm-up too.
"""

from __future__ import annotations

from bisect import bisect_right

from xreg.schedules.base import REQUIRED, Naive, Scheduler, num

# Members whose torch constructor only scales the lr it finds (OneCycleLR and CyclicLR set it themselves);
# ChainedScheduler also needs each member's call to multiply the lr (its members' factors then multiply).
MEMBERS = ("StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "CosineAnnealingWarmRestarts", "LinearLR",
           "ConstantLR", "PolynomialLR", "LambdaLR", "MultiplicativeLR")  # fmt: skip
CHAINABLE = ("StepLR", "MultiStepLR", "ExponentialLR", "LinearLR", "ConstantLR", "PolynomialLR", "MultiplicativeLR")


def _get(name):
    from xreg import schedules

    return schedules.get(name)


class SequentialTwin:
    """torch's SequentialLR: the members built in turn on the group (each constructor steps it once), then
    the lr reset to initial_lr, every member's last_epoch moved back one and the first member restarted."""

    def __init__(self, group, o):
        self.group, self.o = group, o
        self.members = [_get(n).twin(group, dict(mo)) for n, mo in o["schedulers"]]
        self.last_epoch = 0
        group["lr"] = group["initial_lr"]
        for m in self.members:
            m.last_epoch -= 1
        self.members[bisect_right(o["milestones"], 0)]._initial_step()

    def step(self) -> None:
        self.last_epoch += 1
        ms = self.o["milestones"]
        i = bisect_right(ms, self.last_epoch)
        if i > 0 and ms[i - 1] == self.last_epoch:
            self.members[i]._update_lr(0)
        else:
            self.members[i].step()

    @property
    def lr(self) -> float:
        return self.group["lr"]


class ChainedTwin(SequentialTwin):
    def __init__(self, group, o):
        self.group, self.o = group, o
        self.members = [_get(n).twin(group, dict(mo)) for n, mo in o["schedulers"]]

    def step(self) -> None:
        for m in self.members:
            m.step()


def _member_code(o, spans, ctx) -> list[str]:
    from xreg.schedules.base import Context

    out = []
    for i, ((name, mo), calls) in enumerate(zip(o["schedulers"], spans)):
        body = _get(name).exact(dict(mo), Context(calls, ctx.batches, ctx.every, ctx.lr))
        out += [f"def member_{i}(lr):  # {name}({', '.join(f'{k}={num(v)}' for k, v in mo)})", *("    " + ln for ln in body),
                "    return schedule"]  # fmt: skip
    return out


def spans(o, calls: int) -> list[int]:
    """The calls each member of a SequentialLR spans."""
    bounds = [0, *o["milestones"], calls]
    return [max(1, b - a) for a, b in zip(bounds[:-1], bounds[1:])]


def _seq_exact(o, ctx):
    n = len(o["schedulers"])
    return [*_member_code(o, spans(o, ctx.calls), ctx),
            f"schedule = optax.join_schedules([{', '.join(f'member_{i}(lr)' for i in range(n))}], boundaries={list(o['milestones'])})"]


def _chain_exact(o, ctx):
    n = len(o["schedulers"])
    return [*_member_code(o, [ctx.calls] * n, ctx), f"members = [{', '.join(f'member_{i}(lr)' for i in range(n))}]",
            "schedule = lambda count: lr * jnp.prod(jnp.stack([m(count) / lr for m in members]), axis=0)"]  # fmt: skip


def _warmup_cosine(o) -> tuple[dict, dict] | None:
    """(LinearLR's, CosineAnnealingLR's options) of a linear warm-up to lr, then a cosine, at one milestone."""
    names = [n for n, _ in o["schedulers"]]
    if names != ["LinearLR", "CosineAnnealingLR"]:
        return None
    lin, cos = (dict(mo) for _, mo in o["schedulers"])
    return (lin, cos) if lin["end_factor"] == 1.0 else None


def _seq_naive(o, ctx):
    if _warmup_cosine(o) is None:  # no warm-up then cosine: nothing for a porter to fold into one optax call
        return _seq_exact(o, ctx)
    lin, cos = _warmup_cosine(o)
    w, T, e = o["milestones"][0], cos["T_max"], cos["eta_min"]
    return [f"# a porter writes optax.warmup_cosine_decay_schedule(init_value=lr * {num(lin['start_factor'])}, peak_value=lr, "
            f"warmup_steps={w}, decay_steps={T}, end_value={num(e)}),",
            "# which optax computes as (the same pieces, written out: its peak_value == 0 test needs a number, not a traced lr):",
            f"schedule = optax.join_schedules([optax.linear_schedule(lr * {num(lin['start_factor'])}, lr, transition_steps={w}), "
            f"optax.cosine_decay_schedule(lr, decay_steps={T} - {w}, alpha={num(e)} / lr)], boundaries=[{w}])"]  # fmt: skip


def _seq_naive_acts(o, ctx) -> bool:
    pair = _warmup_cosine(o)
    return pair is not None and ctx.calls > o["milestones"][0] + 1 and pair[1]["T_max"] > o["milestones"][0]


SEQUENTIAL = Scheduler(
    name="SequentialLR", formula="member i from milestone i-1 on, counted from its milestone",
    defaults={"schedulers": REQUIRED, "milestones": REQUIRED}, checks={}, members=True,
    twin=SequentialTwin, torch=None, exact=_seq_exact,
    naive=Naive("warmup-cosine-steps", "optax.warmup_cosine_decay_schedule's decay_steps counts the warm-up too: given "
                "torch's T_max (counted from the milestone) its cosine ends warmup_steps early", _seq_naive, acts=_seq_naive_acts),
)  # fmt: skip
CHAINED = Scheduler(
    name="ChainedScheduler", formula="the product of the members' factors",
    defaults={"schedulers": REQUIRED}, checks={}, members=True,
    twin=ChainedTwin, torch=None, exact=_chain_exact,
)  # fmt: skip
