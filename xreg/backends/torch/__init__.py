"""The torch backend: see run.py."""
