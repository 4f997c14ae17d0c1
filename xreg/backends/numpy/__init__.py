"""The numpy backend: see run.py."""
