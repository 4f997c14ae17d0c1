"""Why two runs of the same training differ: every cause ``xreg diagnose`` can name, in ONE table.

Each cause has a stable code (the JSON's ``cause``), the stage where it shows (``gradient``: same
parameters, different gradients; ``update``: same gradients, a different update; ``layer``: a layer
computes another forward pass or moves its running statistics otherwise: the comparison's naive port
names these, from :mod:`xreg.semantics.layers`; ``schedule``: the learning rates differ, the comparison's
naive port names the schedule's differences from :mod:`xreg.schedules`; ``diagnose`` re-simulates neither
yet) and what it means.
The order is the order of preference when more than one re-simulation reproduces a run to round-off
(for momentum-free SGD a coupled and a decoupled decay are the same arithmetic: the simpler name wins).
"""

from __future__ import annotations

from dataclasses import dataclass

from xreg import schedules
from xreg.semantics import clipping, layers


@dataclass(frozen=True)
class Cause:
    code: str
    stage: str
    meaning: str


CAUSES: dict[str, Cause] = {
    c.code: c
    for c in [
        Cause("different-start", "start", "the runs start from different parameters (step 0 differs: another init, "
              "seed or checkpoint); nothing after it can be compared step by step"),
        Cause("lr-schedule", "update", "the learning rates differ (a scheduler stepped per epoch in one run, per step in the other)"),
        Cause("decay-scale", "update", "the decay coefficient differs by a factor (lam vs lam/m, an L2 term in a sum vs a mean loss)"),
        Cause("bias-decay", "update", "a parameter group is decayed in one run only (biases excluded or not)"),
        Cause("coupled-vs-decoupled", "update", "L2 added to the gradient in one run, decoupled decay w <- w - lr*lam*w in the other"),
        Cause("decoupled-lr-scaling", "update", "a decoupled decay multiplied by the learning rate in one run and not in the other"),
        Cause("optimizer-defaults", "update", "the optimizer's defaults differ (rmsprop alpha, eps inside or outside the root, "
              "adagrad's initial accumulator, nadam's momentum schedule, adadelta's lr)"),
        Cause("momentum-dampening", "update", "SGD momentum with dampening in one run only"),
        Cause("clip-order", "gradient", "the decay is added to the gradient before clipping it in one run and after the "
              "clipping in the other (torch's weight_decay acts inside step(), after clip_grad_norm_)"),
        Cause("clipping", "gradient", "one run clips the gradient's global norm (clip_grad_norm_) and the other does not"),
        Cause("loss-scale", "gradient", "the gradients differ by a constant factor (a sum vs a mean loss, another batch size)"),
        *(Cause(c.code, "layer", f"{c.layer}: {c.maps} (naive port: {c.naive})") for c in layers.CONVENTIONS.values()
          if not c.rounding and c.code != "bn-eps"),
        *(Cause(c.code, "gradient", c.why) for c in clipping.NAIVE.values() if c.code != "clip-order"),
        *(Cause(s.naive.code, "schedule", f"{s.name}: {s.naive.why}") for s in schedules.REGISTRY.values() if s.naive),
        Cause(schedules.EPOCH_COUNT, "schedule", schedules.EPOCH_COUNT_WHY),
        Cause(schedules.INT32_COUNT, "schedule", schedules.INT32_COUNT_WHY),
        Cause(schedules.MOMENTUM_FIXED, "schedule", schedules.MOMENTUM_FIXED_WHY),
        Cause("round-off", "update", "the same rule: each step re-simulated from the other run's state matches to round-off; "
              "the gap grows from round-off (a chaotic run), not from a different rule"),
        Cause("unexplained", "", "no known cause reproduces the other run"),
    ]
}  # fmt: skip
CODES: tuple[str, ...] = tuple(CAUSES)
