"""Benchmarks for the shadow proxy (not installed; run `python benchmarks/run.py`)."""
