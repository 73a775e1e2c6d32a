"""Reproducible benchmarks: ``make bench`` (= ``python -m bench``) runs them all."""
