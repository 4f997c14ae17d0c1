"""Issue 9 (first step): trajectory files recorded from plain user loops, torch and optax, not xreg's
backends. Expected values come from the loops themselves (torch's own autograd and scheduler, optax's
own update), never from xreg."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from xreg.core.checks import XregInputError
from xreg.io import trajfile
from xreg.record import Recorder, TorchRecorder, flatten


def test_torch_loop_recorded_by_its_optimizer_hooks(tmp_path, default_data):
    torch.manual_seed(0)
    X = torch.as_tensor(default_data.X_train[:200], dtype=torch.float64)
    y = torch.as_tensor(default_data.y_train[:200], dtype=torch.float64)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    start = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    rec = TorchRecorder(model, opt)  # the user's two lines: this one and save()
    seen_grads, seen_lr = [], []
    for step in range(5):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(X)[:, 0], y)
        loss.backward()
        seen_grads.append({n: p.grad.numpy().copy() for n, p in model.named_parameters()})
        seen_lr.append(opt.param_groups[0]["lr"])
        rec.log_loss(loss.item())
        opt.step()
        sched.step()
    rec.save(tmp_path / "torch.npz")
    run = trajfile.load(tmp_path / "torch.npz")
    assert list(run.params) == ["0.weight", "0.bias", "2.weight", "2.bias"] and run.steps == 5
    assert {k: run.meta[k] for k in ("framework", "optimizer", "dtype")} == {"framework": "torch", "optimizer": "SGD", "dtype": "float64"}
    (group,) = run.meta["groups"]  # the hyperparameters a diagnosis re-simulates with
    assert group["params"] == list(run.params) and (group["weight_decay"], group["momentum"], group["nesterov"]) == (0.01, 0.9, False)
    for n, p in model.named_parameters():
        assert np.array_equal(run.params[n][0], start[n]) and np.array_equal(run.params[n][-1], p.detach().numpy())
        assert np.array_equal(run.grads[n], np.stack([g[n] for g in seen_grads]))  # the loss's own gradient
    assert run.lr.tolist() == seen_lr == [0.1, 0.1, 0.05, 0.05, 0.025]
    assert run.loss.shape == (5,) and run.loss[0] > run.loss[-1]


def test_optax_loop_recorded_with_log(tmp_path, default_data):
    X, y = jnp.asarray(default_data.X_train[:300]), jnp.asarray(default_data.y_train[:300])
    params = {"dense": {"kernel": jnp.zeros((4, 1)), "bias": jnp.zeros(1)}}
    tx = optax.adamw(1e-2, weight_decay=1e-3)
    state = tx.init(params)

    def loss_fn(p):
        z = (X @ p["dense"]["kernel"])[:, 0] + p["dense"]["bias"][0]
        return jnp.mean(optax.sigmoid_binary_cross_entropy(z, y))

    rec = Recorder(meta={"framework": "optax", "optimizer": "adamw"})
    rec.log(params)
    history = [params]
    for _ in range(4):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        rec.log(params, grads=grads, lr=1e-2, loss=loss)
        history.append(params)
    rec.save(tmp_path / "optax.npz")
    run = trajfile.load(tmp_path / "optax.npz")
    assert sorted(run.params) == ["dense.bias", "dense.kernel"] and run.params["dense.kernel"].shape == (5, 4, 1)
    for k, p in enumerate(history):
        assert np.array_equal(run.params["dense.kernel"][k], np.asarray(p["dense"]["kernel"], np.float64))
    assert run.grads["dense.bias"].shape == (4, 1) and run.lr.tolist() == [1e-2] * 4
    with pytest.raises(FileExistsError):
        rec.save(tmp_path / "optax.npz")  # nothing a user wrote is overwritten without force
    rec.save(tmp_path / "optax.npz", force=True)


def test_flatten_names_are_dotted_paths():
    tree = {"layers": [{"w": np.ones((2, 2))}, {"w": np.zeros(3)}], "b": 1.0}
    assert sorted(flatten(tree)) == ["b", "layers.0.w", "layers.1.w"]


@pytest.mark.parametrize("arrays, message", [
    ({}, "no 'params/<name>' arrays"),
    ({"params/w": np.zeros((3, 2)), "params/b": np.zeros((4,))}, "different numbers of rows"),
    ({"params/w": np.zeros((3, 2)), "grads/w": np.zeros((3, 2))}, "grads/w has shape (3, 2), not (2, 2)"),
    ({"params/w": np.zeros((3, 2)), "grads/v": np.zeros((2, 2))}, "grads/v has no params/v"),
    ({"params/w": np.zeros((3, 2)), "lr": np.zeros(3)}, "lr has shape (3,), not (2,)"),
    ({"params/w": np.zeros((3, 2)), "weights": np.zeros(3)}, "arrays a trajectory file does not have: weights"),
    ({"params/w": np.zeros((3, 2)), "meta": np.asarray("{oops")}, "meta is not a JSON string"),
])  # fmt: skip
def test_bad_trajectory_files_one_error(arrays, message, tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(XregInputError, match=None) as err:
        trajfile.load(path)
    assert message in str(err.value)


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "t.npz").write_text("not a zip")
    for path, message in ((tmp_path / "none.npz", "does not exist"), (tmp_path / "t.npz", "not a readable .npz")):
        with pytest.raises(XregInputError, match=message):
            trajfile.load(path)


def test_recorder_refuses_inconsistent_logs():
    rec = Recorder()
    with pytest.raises(XregInputError, match="Nothing was recorded"):
        rec.run()
    with pytest.raises(XregInputError, match="the initial parameters alone"):
        rec.log({"w": np.zeros(2)}, lr=0.1)
    rec.log({"w": np.zeros(2)})
    rec.log({"w": np.ones(2)}, lr=0.1)
    with pytest.raises(XregInputError, match="lr was given at some steps and not at others"):
        rec.log({"w": np.ones(2)})
    with pytest.raises(XregInputError, match="the parameter names changed"):
        rec.log({"v": np.ones(2)}, lr=0.1)
