"""Fixtures for postgres (see docs/testing.md)."""
