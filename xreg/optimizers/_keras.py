"""What Keras's optimizers share (``keras/src/optimizers/base_optimizer.py``, Keras 3), for the ``keras.*`` rules.

Keras applies ``weight_decay`` to every optimizer, SGD included, as a decoupled step before the update,
``w <- w - w*wd*lr`` (``_apply_weight_decay``, with the current lr), on every variable not excluded
(``exclude_from_weight_decay``: xreg's ``--no-decay`` groups). In xreg's terms that is the ``decoupled``
convention, native to every Keras rule: ``--lam`` is Keras's ``weight_decay``. Keras has no coupled decay (its
L2 is a loss term: ``keras.regularizers.L2(l2)``, the ``l2-sum`` convention).

Each rule computes in the variable's dtype with Keras's own operation order (``ops.cast(lr, dtype)`` and the
Python-float options applied as weak-typed scalars); xreg's twins follow that order in the rule itself: NumPy
(``Reference``), optax (a GradientTransformation returning the step to subtract, the chain ending in ``scale(-1)``)
and torch (a ``torch.optim.Optimizer`` subclass whose group ``weight_decay`` is Keras's). The decay: the torch twin
runs Keras's ``w - (w*wd)*lr`` then the update; NumPy and optax run xreg's decoupled recipe, ``w - (lr*wd)*w``
(optax: folded into the step it subtracts), a rounding apart (one ulp a step at most).

Not taken (refused by the option check, as options the rules do not list): ``clipnorm``, ``global_clipnorm``,
``clipvalue`` (xreg's ``--clip-norm --clip-per-parameter`` and ``--clip-value`` are torch's forms), ``use_ema``,
``gradient_accumulation_steps`` (``--accumulate``), ``loss_scale_factor``.
"""

from __future__ import annotations

from typing import Any, Callable

COMMON: tuple[str, ...] = ()  # no torch maximize / foreach


def torch_twin(update: Callable[..., Any], state_names: tuple[str, ...], name: str) -> type:
    """A ``torch.optim.Optimizer`` running a Keras rule: per param group ``lr``, ``weight_decay`` (Keras's:
    ``p <- p - p*wd*lr`` before the update) and the rule's options; ``update(p, g, state, group, t)`` changes
    ``p`` in place (``state``: the buffers ``state_names``, zeros at the first step; ``t``: the 1-based step)."""
    import torch

    class KerasRule(torch.optim.Optimizer):
        def __init__(self, params, lr, weight_decay=0.0, **options):
            super().__init__(params, dict(lr=lr, weight_decay=weight_decay, **options))

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    if not state:
                        state["step"] = 0
                        for n in state_names:
                            state[n] = torch.zeros_like(p)
                    state["step"] += 1
                    if group["weight_decay"]:
                        p.sub_(p * group["weight_decay"] * group["lr"])
                    update(p, p.grad, state, group, state["step"])
            return loss

    KerasRule.__name__ = KerasRule.__qualname__ = name
    return KerasRule
