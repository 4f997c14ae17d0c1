"""xreg.core."""
