"""xreg: run one regularized training experiment in PyTorch, JAX/Optax and NumPy, and explain the gap."""

__all__ = ["Dataset", "ExperimentSpec", "Trajectory", "XregInputError"]
__version__ = "0.2.0"

_LAZY = {"XregInputError": "xreg.core.checks", "Dataset": "xreg.core.spec", "ExperimentSpec": "xreg.core.spec",
         "Trajectory": "xreg.core.spec"}  # fmt: skip


def __getattr__(name: str):
    """The public names, imported on first use: ``import xreg`` itself loads nothing (the command's
    entry point installs its Ctrl-C handling before numpy and the rest load)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'xreg' has no attribute {name!r}")
