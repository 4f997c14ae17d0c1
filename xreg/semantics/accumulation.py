"""Gradient accumulation (``--accumulate K``): K micro-batches per optimizer step, and the forms a porter
writes first.

torch: ``(loss_j / K).backward()`` for each micro-batch j, then one ``clip``/``step()``: the step's gradient
is the mean of the K micro-batch means, ``sum_j g_j / K`` (``optax.MultiSteps`` averages the same K
gradients). A schedule counts optimizer steps, not micro-batches (torch's scheduler is stepped after
``step()``, optax's count moves once per applied update). The naive forms (``--naive-accumulate CODE``):
"""

from __future__ import annotations

from xreg.semantics.naive import Difference, table

NAIVE: dict[str, Difference] = table(
    Difference("accumulate-sum", "each micro-batch's loss back-propagated without the 1/K: the step's gradient is "
                    "the sum of the K micro-batch means, K times torch's loss/K"),
    Difference("accumulate-global-mean", "every row weighted alike (the rows' summed loss over all K micro-batches "
                    "divided by their rows), where torch's loss/K averages the K micro-batch means: unequal micro-batches "
                    "(an epoch's short last batch) weigh otherwise"),
)  # fmt: skip
CODES: tuple[str, ...] = tuple(NAIVE)


def weights(codes: tuple[str, ...], sizes, xp):
    """Each micro-batch gradient's weight in the step's gradient: 1/K (torch), 1 (accumulate-sum) or m_j/M
    (accumulate-global-mean); ``sizes``: the micro-batches' rows."""
    K = sizes.shape[-1]
    if "accumulate-sum" in codes:
        return xp.ones_like(sizes)
    if "accumulate-global-mean" in codes:
        return sizes / xp.sum(sizes, axis=-1, keepdims=True)
    return xp.ones_like(sizes) / K


def blocked(code: str, accumulate: int, unequal: bool) -> str | None:
    if accumulate < 2:
        return "the run does not accumulate (--accumulate K, K >= 2)"
    if code == "accumulate-global-mean" and not unequal:
        return "every micro-batch of a step has the same rows here, so both means are one (give a --batch-size that leaves a short last batch)"
    return None
