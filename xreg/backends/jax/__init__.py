"""The jax backend: see run.py."""
