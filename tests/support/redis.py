"""Fixtures for Redis (see docs/testing.md, "Broker and Redis").

``redis_url`` (session): ``CLASS_MANAGEMENT_SERVICE_TEST_REDIS_URL``, else
``redis://127.0.0.1:6379/0``; the session fails with one line when it does not answer.
Tests share that server: each uses its own channels and keys (``redis_namespace``).
"""

from __future__ import annotations

import os
import uuid

import pytest

DEFAULT_URL = "redis://127.0.0.1:6379/0"
ENV_VAR = "CLASS_MANAGEMENT_SERVICE_TEST_REDIS_URL"


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = os.environ.get(ENV_VAR, "").strip() or DEFAULT_URL
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        pytest.fail(
            f"Redis at {url} does not answer ({type(exc).__name__}); start it "
            f"(make services) or set {ENV_VAR}",
            pytrace=False,
        )
    finally:
        client.close()
    return url


@pytest.fixture
def redis_namespace() -> str:
    """A prefix for this test's keys and channels (e.g. teacher ids on ``ws:{teacher_id}``)."""
    return f"cms-test-{uuid.uuid4().hex[:12]}"
