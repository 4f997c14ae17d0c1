"""The keras backend: see run.py."""
