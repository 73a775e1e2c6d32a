"""Fixtures for broker (see docs/testing.md)."""
