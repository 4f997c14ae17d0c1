"""The L2 term of the loss in its two spellings: lam/2*||w||^2 (torch's weight_decay = lam) and lam*||w||^2
without the 1/2 (Keras regularizers.L2, many scratch losses: torch's weight_decay = 2*lam)."""

from __future__ import annotations

import math

import numpy as np

from tests.helpers import max_gap
from xreg import backends
from xreg.core.spec import ExperimentSpec


def test_l2_without_the_half_is_torch_weight_decay_two_lam(default_data):
    # lam*||w||^2 has the gradient 2*lam*w: the l2-sum run with lam equals torch's weight_decay = 2*lam in every backend
    spec = ExperimentSpec(optimizer="sgd", options={"momentum": 0.9}, lr=0.05, lam=0.05, epochs=40, convention="l2-sum")
    ref = backends.train("torch", spec.replace(convention="coupled", lam=0.1), default_data)
    for b in ("torch", "jax", "numpy"):
        run = backends.train(b, spec, default_data)
        assert max_gap(ref, run) <= 1e-12, b
        w = {n: run.params[n][10] for n in run.params}  # the recorded penalty (before step 11) is lam*||w||^2, not lam/2*||w||^2
        sq = sum(float(np.sum(v * v)) for v in w.values())
        assert sq > 0 and math.isclose(run.penalty[10], 0.05 * sq, rel_tol=1e-12)
    from xreg.semantics import conventions

    assert conventions.torch_weight_decay("l2-sum", 0.05, [1096], 0.05).weight_decay == 0.1
    assert conventions.lam_for_torch_weight_decay("l2-sum", 0.1, [1096], 0.05) == 0.05
