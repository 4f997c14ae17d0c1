"""Issue 9 (item 7, first part): xreg.testing.assert_trajectories_close on runs of plain user loops."""

import numpy as np
import pytest
import torch

from xreg.record import Recorder, TorchRecorder
from xreg.testing import assert_trajectories_close


def torch_run(X, y, lam, steps=30):
    model = torch.nn.Linear(X.shape[1], 1).double()
    torch.nn.init.zeros_(model.weight), torch.nn.init.zeros_(model.bias)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=lam)
    rec = TorchRecorder(model, opt)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(model(Xt)[:, 0], yt).backward()
        opt.step()
    return rec.run()


def scratch_run(X, y, lam, steps=30):
    """The classic hand-written loop, with torch's rule: g + lam*w on every parameter."""
    w, b = np.zeros(X.shape[1]), 0.0
    rec = Recorder()
    rec.log({"weight": w[None, :], "bias": np.array([b])})
    for _ in range(steps):
        r = (1 / (1 + np.exp(-(X @ w + b))) - y) / len(y)
        w, b = w - 0.1 * (X.T @ r + lam * w), b - 0.1 * (r.sum() + lam * b)
        rec.log({"weight": w[None, :], "bias": np.array([b])})
    return rec.run()


def test_same_rule_passes_a_different_rule_fails_at_its_step(default_data, tmp_path):
    X, y = default_data.X_train, default_data.y_train
    ref = torch_run(X, y, 0.1)
    assert_trajectories_close(ref, scratch_run(X, y, 0.1))  # same update, another framework: round-off apart
    with pytest.raises(AssertionError, match=r"part at step 2: parameter '(weight|bias)' differs by"):
        assert_trajectories_close(ref, scratch_run(X, y, 0.1 * (1 + 1e-6)))  # w0 = 0: lam shows from step 2
    ref.params["weight"][-1, 0, 0] += 1e-9  # one entry of the last step, below any plot's resolution
    with pytest.raises(AssertionError, match=r"part at step 30: parameter 'weight' differs by 1\.0"):
        assert_trajectories_close(ref, scratch_run(X, y, 0.1))


def test_names_and_shapes_must_agree(default_data):
    X, y = default_data.X_train, default_data.y_train
    a = scratch_run(X, y, 0.1, steps=3)
    with pytest.raises(AssertionError, match="name different parameters"):
        assert_trajectories_close(a, {"w": a.params["weight"], "bias": a.params["bias"]})
    with pytest.raises(AssertionError):
        assert_trajectories_close(a, {"weight": a.params["weight"][:, 0], "bias": a.params["bias"]})  # chex: shapes


def test_a_failure_carries_the_diagnosed_cause(default_data):
    X, y = default_data.X_train, default_data.y_train
    ref = torch_run(X, y, 0.1)
    scratch = scratch_run(X, y, 0.1 / len(y))  # the torch rule with lam/m: the classic port's coefficient
    with pytest.raises(AssertionError, match=r"Diagnosed cause: decay-scale .* factor|Diagnosed cause: decay-scale") as err:
        assert_trajectories_close(ref, scratch)
    assert f"times 1/{len(y)}" in str(err.value) and "fix in A: weight_decay=" in str(err.value)


def test_assert_optax_matches_torch():
    import optax

    from xreg.testing import assert_optax_matches_torch

    # exact: AdamW against the stock optax.adamw (both decay decoupled, the bias too)
    assert_optax_matches_torch(optax.adamw(1e-2, weight_decay=1e-2),
                               lambda m: torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=1e-2), steps=15)  # fmt: skip
    # an MLP in minibatches, SGD with momentum and coupled decay written as an optax chain
    assert_optax_matches_torch(optax.chain(optax.add_decayed_weights(1e-3), optax.sgd(0.1, momentum=0.9)),
                               lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3),
                               model="mlp", hidden=5, batch_size=100, steps=12)  # fmt: skip
    # the classic mistake: torch Adam(weight_decay) is L2, optax.adamw is decoupled
    with pytest.raises(AssertionError, match="Diagnosed cause: coupled-vs-decoupled"):
        assert_optax_matches_torch(optax.adamw(1e-2, weight_decay=1e-2),
                                   lambda m: torch.optim.Adam(m.parameters(), lr=1e-2, weight_decay=1e-2), steps=15)  # fmt: skip
