"""Resuming (``--resume-at K``): every backend saves its whole state after K optimizer steps, rebuilds itself
from the saved state and goes on; the run must equal the uninterrupted one. torch saves
``model.state_dict()``, ``optimizer.state_dict()`` and ``scheduler.state_dict()`` with ``torch.save`` and loads
them back with ``torch.load(weights_only=True)`` into a new model, optimizer and scheduler; NumPy pickles its
parameters and its optimizer's buffers; JAX's state is its scan's carry (parameters, buffers, optax state) and
the schedule's count.

The classic resume bugs, runnable as a naive JAX port's (``--naive-resume CODE``), are :data:`NAIVE`.
"""

from __future__ import annotations

from xreg.semantics.naive import Difference, table

NAIVE: dict[str, Difference] = table(
    Difference("resume-fresh-optimizer", "the optimizer rebuilt without its saved state (momentum or Adam's moments "
                "from zero, the step count from 0): optimizer.load_state_dict forgotten"),
    Difference("resume-step-count", "the optimizer's state restored but its step count restarted at 0, so Adam's bias "
                "correction starts again at 1 (1/(1-b^t) with t from 1 on a warm m and v)"),
    Difference("resume-schedule", "the lr schedule not restored: it restarts from its first value at the resumed step "
                "(scheduler.load_state_dict forgotten, or the schedule counted from the resumed step); ReduceLROnPlateau "
                "keeps the optimizer's lr but forgets its best loss and its bad epochs"),
)  # fmt: skip
CODES: tuple[str, ...] = tuple(NAIVE)


def blocked(code: str, resume_at: int | None, has_state: bool, counts_steps: bool, scheduled: bool) -> str | None:
    if resume_at is None:
        return "the run does not resume (--resume-at K)"
    if code == "resume-fresh-optimizer" and not has_state:
        return "the optimizer keeps no state here (SGD without momentum)"
    if code == "resume-step-count" and not counts_steps:
        return "the optimizer's update does not read its step count here"
    if code == "resume-schedule" and not scheduled:
        return "the run has no lr schedule (--schedule)"
    return None
