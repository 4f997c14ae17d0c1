"""xreg.analysis."""
