"""xreg.io."""
