"""The Python API of ``xreg translate`` (``xreg.translate.translate("torch.adam", lr=1e-3, weight_decay=1e-4)``),
a public name kept at the package root; the code is :mod:`xreg.analysis.translate`."""

from xreg.analysis.translate import Translation, optax_chain_code, translate  # noqa: F401 (the public API)
