"""xreg: run one regularized training experiment in PyTorch, JAX/Optax and NumPy, and explain the gap."""

from xreg.checks import XregInputError
from xreg.core.spec import Dataset, ExperimentSpec, Trajectory

__all__ = ["Dataset", "ExperimentSpec", "Trajectory", "XregInputError"]
__version__ = "0.2.0"
