"""xreg.semantics."""
