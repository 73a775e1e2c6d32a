"""Shared fixtures. Each service's fixtures live in ``tests/support``; they are plugins here so
that every test directory can use them."""

pytest_plugins = [
    "tests.support.postgres",
    "tests.support.broker",
    "tests.support.redis",
]
