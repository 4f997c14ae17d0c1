"""Record a run of your own training loop into a trajectory file (:mod:`xreg.io.trajfile`).

A JAX, optax or NumPy loop::

    rec = xreg.record.Recorder(meta={"framework": "optax", "optimizer": "adamw"})
    rec.log(params)                                  # the initial parameters (any pytree of arrays)
    for X, y in batches:
        loss, grads = jax.value_and_grad(loss_fn)(params, X, y)
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        rec.log(params, grads=grads, lr=1e-3, loss=loss)   # after each step: what that step used
    rec.save("optax.npz")

A torch loop: two lines, the rest is torch's own optimizer step hooks::

    rec = xreg.record.TorchRecorder(model, optimizer)  # records the parameters now
    ...                                                # your loop, unchanged; optionally rec.log_loss(loss)
    rec.save("torch.npz")

Names: torch's ``named_parameters()``; the path of a pytree joined with ``.`` (dicts by key, lists and
tuples by position). Nothing is imported from a framework until ``TorchRecorder`` is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from xreg.core.checks import XregInputError
from xreg.io import trajfile


def _leaf(x: Any, name: str) -> np.ndarray:
    """One leaf as a float64 array: real numbers only (a torch tensor that requires grad is detached)."""
    if x is None:
        raise XregInputError(f"log(): '{name}' is None; record arrays of numbers (leave the entry out instead).")
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.is_complex():
            raise XregInputError(f"log(): '{name}' holds complex numbers; a trajectory records real numbers.")
        x = x.double().numpy()  # bfloat16 and float16 tensors too (numpy has no bfloat16)
    a = np.asarray(x)
    if a.dtype.kind == "c":
        raise XregInputError(f"log(): '{name}' holds complex numbers; a trajectory records real numbers.")
    if a.dtype.kind in "OUSM" or a.dtype.hasobject:
        raise XregInputError(f"log(): '{name}' holds {a.dtype} values; a trajectory records real numbers.")
    try:
        return np.array(a, dtype=np.float64)  # JAX's bfloat16 (ml_dtypes) converts
    except (TypeError, ValueError):
        raise XregInputError(f"log(): '{name}' holds {a.dtype} values; a trajectory records real numbers.") from None


def flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """A pytree of arrays as ``{dotted.path: float64 array}`` (dicts by key, lists/tuples by position);
    two leaves that flatten to one name (``{'a.b': x, 'a': {'b': y}}``) are an input error."""
    if isinstance(tree, Mapping):
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, (list, tuple)) and not hasattr(tree, "__array__"):
        items = [(str(i), v) for i, v in enumerate(tree)]
    else:
        return {prefix: _leaf(tree, prefix or "the value")}
    out: dict[str, np.ndarray] = {}
    for k, v in items:
        for name, leaf in flatten(v, f"{prefix}.{k}" if prefix else k).items():
            if name in out:
                raise XregInputError(f"log(): two entries are both named '{name}' once flattened; rename one.")
            out[name] = leaf
    return out


def _same_layout(first: Mapping[str, np.ndarray], now: Mapping[str, np.ndarray], what: str, step: int, since: str) -> None:
    """The names and shapes logged at ``step`` are those first logged (``since``: when that was)."""
    if set(now) != set(first):
        raise XregInputError(f"log(): the {what} names changed: {sorted(first)} then {sorted(now)}.")
    changed = [n for n in now if now[n].shape != first[n].shape]
    if changed:
        n = changed[0]
        raise XregInputError(f"log(): the {what} '{n}' changed shape: {first[n].shape} {since}, {now[n].shape} at step {step}.")


def _number(value: Any, what: str) -> float:
    """A scalar the loop logs (lr, loss): a number, a 1-element array or a tensor (detached)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    a = np.asarray(value)
    if a.size != 1 or a.dtype.kind in "cOUSM":
        raise XregInputError(f"log(): {what} must be one real number; got {type(value).__name__} of shape {a.shape}.")
    try:
        return float(a.reshape(()).astype(np.float64))
    except (TypeError, ValueError):
        raise XregInputError(f"log(): {what} must be one real number; got {a.dtype}.") from None


def _dtype_of(tree: Any) -> str:
    """The floating dtype of the first array leaf (the precision the loop computed in), else float64."""
    while isinstance(tree, (Mapping, list, tuple)) and not hasattr(tree, "__array__") and len(tree):
        tree = next(iter(tree.values())) if isinstance(tree, Mapping) else tree[0]
    dt = getattr(tree, "dtype", None)
    name = str(dt).replace("torch.", "") if dt is not None else "float64"
    return name if name in ("float16", "bfloat16", "float32", "float64") else "float64"


def torch_groups(named, optimizer) -> list[dict[str, Any]]:
    """Each param group of a torch optimizer as JSON: its parameters' names and its hyperparameters
    (numbers, flags, pairs; torch's own option names), so a diagnosis can re-simulate the rule."""
    name_of = {id(p): n for n, p in named}
    out = []
    for group in optimizer.param_groups:
        entry: dict[str, Any] = {"params": [name_of.get(id(p), "?") for p in group["params"]]}
        for k, v in group.items():
            if k == "params" or v is None:
                continue
            if isinstance(v, (bool, int, float, str)):
                entry[k] = v
            elif isinstance(v, (tuple, list)) and all(isinstance(x, (int, float)) for x in v):
                entry[k] = [float(x) for x in v]
            elif hasattr(v, "item") and getattr(v, "numel", lambda: 0)() == 1:
                entry[k] = float(v.item())  # a tensor lr
        out.append(entry)
    return out


def _torch_default_dtype() -> str:
    import torch

    return str(torch.get_default_dtype()).replace("torch.", "")


class Recorder:
    """Collects a run step by step: ``log(params)`` once before the first step, then after each step
    ``log(params, grads=..., lr=..., loss=...)`` with what that step used. ``save(path)`` writes the file."""

    def __init__(self, meta: Mapping[str, Any] | None = None):
        import json

        self.meta = dict(meta or {})
        try:
            json.dumps(self.meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise XregInputError(f"Recorder(meta=...): meta is saved as JSON: strings, numbers, lists and dicts ({exc}).") from None
        self._params: list[dict[str, np.ndarray]] = []
        self._grads: list[dict[str, np.ndarray]] = []
        self._lr: list[float] = []
        self._loss: list[float] = []

    def log(self, params: Any, grads: Any = None, lr: float | None = None, loss: float | None = None) -> None:
        if not self._params and "dtype" not in self.meta:
            self.meta["dtype"] = _dtype_of(params)
        flat = flatten(params)
        flat_grads = flatten(grads) if grads is not None else None
        if self._params:
            _same_layout(self._params[0], flat, "parameter", len(self._params), "at the start")
        if flat_grads is not None and self._grads:
            _same_layout(self._grads[0], flat_grads, "gradient", len(self._params), "at step 1")
        if not self._params and (grads is not None or lr is not None or loss is not None):
            raise XregInputError("log(): the first call records the initial parameters alone (no grads, lr or loss).")
        step = len(self._params)  # this call records the parameters after step ``step`` (0: the start)
        for store, value, name in ((self._grads, grads, "grads"), (self._lr, lr, "lr"), (self._loss, loss, "loss")):
            if step and (len(store) == step - 1) != (value is not None) and (value is not None or store):
                raise XregInputError(f"log(): {name} was given at some steps and not at others.")
        self._params.append(flat)
        if step:
            if flat_grads is not None:
                self._grads.append(flat_grads)
            if lr is not None:
                self._lr.append(_number(lr, "lr"))
            if loss is not None:
                self._loss.append(_number(loss, "loss"))

    @property
    def steps(self) -> int:
        return max(0, len(self._params) - 1)

    def run(self) -> trajfile.RecordedRun:
        if not self._params:
            raise XregInputError("Nothing was recorded: call log(params) with the initial parameters first.")
        names = list(self._params[0])
        params = {n: np.stack([p[n] for p in self._params]) for n in names}
        grads = None
        if self._grads:
            missing = [n for n in self._grads[0] if n not in names]
            if missing:
                raise XregInputError(f"The grads name parameters the params do not have: {', '.join(missing)}.")
            grads = {n: np.stack([g[n] for g in self._grads]) for n in self._grads[0]}
        series = {k: np.asarray(v) if v else None for k, v in (("lr", self._lr), ("loss", self._loss))}
        return trajfile.check(trajfile.RecordedRun(params, grads, series["lr"], series["loss"], self.meta))

    def save(self, path: str | Path, *, force: bool = False) -> None:
        trajfile.save(path, self.run(), force=force)


class TorchRecorder(Recorder):
    """Records a torch loop through ``optimizer``'s step hooks: before each ``step()`` the gradients
    (``p.grad``: the loss's own gradient, before torch adds ``weight_decay``) and the first param
    group's lr; after it the parameters. The parameters are recorded once at construction. ``meta``
    gets the optimizer's class, the dtype and its param groups (names and hyperparameters, at construction)."""

    def __init__(self, model, optimizer, meta: Mapping[str, Any] | None = None):
        self._named = list(model.named_parameters())
        super().__init__({"framework": "torch", "optimizer": type(optimizer).__name__,
                          "groups": torch_groups(self._named, optimizer), "default_dtype": _torch_default_dtype(),
                          "dtype": _dtype_of([p for _, p in self._named]), **(meta or {})})  # fmt: skip
        self._pending: tuple[dict[str, np.ndarray], float] | None = None
        self._pending_loss: float | None = None
        self.log(self._snapshot())
        self._hooks = [optimizer.register_step_pre_hook(self._before), optimizer.register_step_post_hook(self._after)]

    def _snapshot(self, attr: str | None = None) -> dict[str, np.ndarray]:
        out = {}
        for name, p in self._named:
            t = p if attr is None else getattr(p, attr)
            out[name] = np.zeros(tuple(p.shape)) if t is None else t.detach().double().cpu().numpy().copy()
        return out

    def _before(self, optimizer, args, kwargs) -> None:
        self._pending = (self._snapshot("grad"), float(optimizer.param_groups[0]["lr"]))

    def _after(self, optimizer, args, kwargs) -> None:
        grads, lr = self._pending
        self.log(self._snapshot(), grads=grads, lr=lr, loss=self._pending_loss)
        self._pending, self._pending_loss = None, None

    def log_loss(self, loss) -> None:
        """The loss of the coming step (call it before ``optimizer.step()``), to record it too."""
        self._pending_loss = _number(loss, "loss")

    def remove(self) -> None:
        """Stop recording (the optimizer's hooks are removed)."""
        for h in self._hooks:
            h.remove()
