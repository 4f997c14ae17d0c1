"""The worked example of this field, derived by hand.

Linear model, MSE = mean((z - y)^2), w = b = 1, x = [2, 4], y = [7, 11], SGD lr 0.1, lam 1, one step.
z = [3, 5], residuals r = z - y = [-4, -6];  dL/dw = 2*mean(r*x) = -32,  dL/db = 2*mean(r) = -10.
torch:   w = 1 - 0.1*(-32 + 1*1)   = 4.1,   b = 1 - 0.1*(-10 + 1*1)   = 1.9
scratch: w = 1 - 0.1*(-32 + 1/2*1) = 4.15,  b = 1 - 0.1*(-10 + 1/2*1) = 1.95   (m = 2)
"""

import numpy as np
import pytest

from xreg import backends
from xreg.core.spec import Dataset, ExperimentSpec

DATA = Dataset("worked", np.array([[2.0], [4.0]]), np.array([7.0, 11.0]), np.zeros((0, 1)), np.zeros(0), ("x",))
SPEC = ExperimentSpec(model="linear", lr=0.1, lam=1.0, epochs=1, init="constant", init_scale=1.0)
EXPECTED = {  # convention -> (weight, bias), by hand above
    "coupled": (4.1, 1.9),
    "l2-loss": (4.1, 1.9),  # d/dw of lam/2*w^2 is lam*w: the torch update
    "scratch": (4.15, 1.95),
    "decoupled": (4.1, 1.9),  # w - lr*g - lr*lam*w: equal to torch for momentum-free SGD
    "none": (4.2, 2.0),
}


@pytest.mark.parametrize("backend", backends.NAMES)
@pytest.mark.parametrize("convention", list(EXPECTED))
def test_one_step_matches_hand_derivation(backend, convention):
    t = backends.train(backend, SPEC.replace(convention=convention), DATA)
    w, b = EXPECTED[convention]
    np.testing.assert_allclose(t.final_params["weight"], [[w]], rtol=0, atol=1e-14)
    np.testing.assert_allclose(t.final_params["bias"], [b], rtol=0, atol=1e-14)
    assert t.loss[0] == pytest.approx((16 + 36) / 2)  # MSE at the initial point


def test_no_decay_bias_leaves_bias_gradient_alone():
    for backend in backends.NAMES:
        t = backends.train(backend, SPEC.replace(no_decay=("bias",)), DATA)
        np.testing.assert_allclose(t.flat[-1], [4.1, 2.0], rtol=0, atol=1e-14)


def test_scenario_file_runs():
    from comparisons import worked_example

    assert worked_example.main() == 0


def _clipped(g, max_norm):
    return g * min(1.0, max_norm / (np.sqrt(np.sum(g * g)) + 1e-6))


@pytest.mark.parametrize("backend", backends.NAMES)
def test_where_the_decay_stands_relative_to_clipping(backend):
    """The same step with clip_grad_norm_(max_norm=1): torch clips the data gradient, then adds lam*w
    (weight_decay acts inside optimizer.step); the scratch loop adds lam/m*w first and clips the sum."""
    w = np.array([1.0, 1.0])
    g = np.array([-32.0, -10.0])  # dL/dw, dL/db at w = b = 1 (see above)
    expected = {
        "coupled": w - 0.1 * (_clipped(g, 1.0) + 1.0 * w),
        "scratch": w - 0.1 * _clipped(g + 0.5 * w, 1.0),
        "l2-loss": w - 0.1 * _clipped(g + 1.0 * w, 1.0),  # the penalty is part of the loss, so it is clipped
        "decoupled": w - 0.1 * (_clipped(g, 1.0) + 1.0 * w),  # momentum-free SGD: the same update as torch
    }
    for convention, want in expected.items():
        t = backends.train(backend, SPEC.replace(convention=convention, clip_norm=1.0), DATA)
        np.testing.assert_allclose(t.flat[-1], want, rtol=0, atol=1e-14, err_msg=convention)
