"""Turning a comparison into what a user keeps: a table, a JSON document, a picture."""
