"""Backend registry. Every backend module exposes ``train(spec, data) -> Trajectory`` and the step
contract it is built on: ``init(structure, hparams, params0) -> state``, a pure
``step(state, batch, hparams) -> state`` and ``params_of(state) -> {name: array}``.

Modules are imported lazily, so a missing framework makes only its backend unavailable.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from xreg.core.checks import check_choice
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory

BACKENDS = {
    "torch": "xreg.backends.torch.run",
    "jax": "xreg.backends.jax.run",
    "numpy": "xreg.backends.numpy.run",
    "keras": "xreg.backends.keras.run",  # Keras 3 on JAX: runs the keras.* rules, only when asked for (--backend keras)
}
NAMES = ("torch", "jax", "numpy")  # the backends a comparison runs unless told (keras: for Keras's rules)
ALL = tuple(BACKENDS)


class BackendUnavailable(RuntimeError):
    """The backend's framework could not be imported."""


# The address space a framework needs to load and run (measured here with ``ulimit -v``: JAX beside torch
# aborts or segfaults below about 2 GiB, torch alone runs in 1 GiB); a lower limit is said, not crashed into.
ADDRESS_SPACE_GIB = {"jax": 2.5, "torch": 1.0}


def _address_space_check(name: str) -> None:
    import resource

    need = ADDRESS_SPACE_GIB.get(name)
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if need is not None and soft != resource.RLIM_INFINITY and soft < need * 2**30:
        raise BackendUnavailable(f"the address-space limit (ulimit -v) of {soft / 2**30:.3g} GiB is below the {need:g} GiB "
                                 f"{name} needs to load; raise it, or leave the {name} runs out with --backend")  # fmt: skip


def load(name: str) -> ModuleType:
    check_choice("backend", name, BACKENDS)
    if BACKENDS[name] not in sys.modules:
        _address_space_check(name)
    try:
        return importlib.import_module(BACKENDS[name])
    except ImportError as exc:
        raise BackendUnavailable(f"backend '{name}' is unavailable: {exc}") from exc


def train(name: str, spec: ExperimentSpec, data: Dataset) -> Trajectory:
    """Train ``spec`` on ``data`` with backend ``name``."""
    return load(name).train(spec, data)


def compiled(name: str) -> bool:
    """Whether backend ``name`` runs inside compiled computations that Ctrl-C cannot interrupt (JAX): the
    caller runs it in a worker thread and waits in short slices (:func:`xreg.core.progress.interruptible`).
    The Python-loop backends stay on the calling thread (torch's thread settings are per thread)."""
    return bool(getattr(load(name), "COMPILED", False))


def check_device(name: str, spec: ExperimentSpec) -> None:
    """Raise an input error before any run if backend ``name`` cannot run where ``spec.device`` says
    (a backend without ``check_device`` runs on the cpu whatever the device: NumPy)."""
    check = getattr(load(name), "check_device", None)
    if check is not None:
        check(spec.device)


def kernel_probe(name: str, spec: ExperimentSpec):
    """Whether the kernels backend ``name`` runs for ``spec`` are the ones the emulating backends reproduce
    bit for bit on this machine (``xreg.core.spec.KernelProbe``), or None where nothing depends on one."""
    probe = getattr(load(name), "kernel_probe", None)
    return probe(spec) if probe is not None else None
