"""Record the same training twice, as people write it: torch.optim.Adam(weight_decay) and optax.adamw.

    .venv/bin/python examples/mismatch/record_pair.py OUT_DIR    # writes OUT_DIR/torch.npz, OUT_DIR/optax.npz
"""
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from xreg.io.data import default_dataset
from xreg.record import Recorder, TorchRecorder

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
if not out.is_dir():  # say so now, not after training
    sys.exit(f"error: the folder '{out}' does not exist (make it first: mkdir -p '{out}')")
for name in ("torch.npz", "optax.npz"):
    if (out / name).exists():
        sys.exit(f"error: '{out / name}' exists; record into an empty folder (nothing you wrote is overwritten)")
d = default_dataset()
X, y = d.X_train, d.y_train
w0 = 0.1 * np.random.default_rng(0).standard_normal((1, X.shape[1]))

# torch
model = torch.nn.Linear(X.shape[1], 1).double()
with torch.no_grad():
    model.weight.copy_(torch.as_tensor(w0))
    model.bias.zero_()
opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-2)
rec = TorchRecorder(model, opt)
Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
for _ in range(50):
    opt.zero_grad()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(Xt)[:, 0], yt)
    loss.backward()
    rec.log_loss(loss.item())
    opt.step()
rec.save(out / "torch.npz")

# optax (flax layout: kernel (in, out))
with jax.enable_x64(True):
    params = {"dense": {"kernel": jnp.asarray(w0.T), "bias": jnp.zeros(1)}}
    tx = optax.adamw(1e-2, weight_decay=1e-2)
    state = tx.init(params)

    def loss_fn(p):
        z = (X @ p["dense"]["kernel"])[:, 0] + p["dense"]["bias"][0]
        return jnp.mean(optax.sigmoid_binary_cross_entropy(z, y))

    rec = Recorder(meta={"framework": "optax", "optimizer": "adamw"})
    rec.log(params)
    for _ in range(50):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        rec.log(params, grads=grads, lr=1e-2, loss=loss)
    rec.save(out / "optax.npz")
print(f"wrote {out / 'torch.npz'} and {out / 'optax.npz'}")
