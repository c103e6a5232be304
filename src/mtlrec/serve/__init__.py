"""Serving: load a run directory and score rows."""
