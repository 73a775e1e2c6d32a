"""Fixtures for redis (see docs/testing.md)."""
