"""Benchmarks: ``python -m ecorec.bench <name>`` (see :mod:`ecorec.bench.__main__`)."""
