"""``class-api``'s process set-up (``class_api.logs.configure_logging``) keeps exactly one
expected warning out of its output: the discarded connect coroutine of a read-only unit of
work's reconnect (adapters_sql.uow); other warnings still show."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import warnings
from class_api.logs import configure_logging
from class_runtime.settings import Settings

configure_logging(Settings.of(use_mock_repository=True))
for module, text in (
    ("sqlalchemy.util.concurrency", "coroutine 'connect' was never awaited"),
    ("sqlalchemy.util.concurrency", "coroutine 'other' was never awaited"),
    ("somewhere.else", "coroutine 'connect' was never awaited"),
):
    warnings.warn_explicit(text, RuntimeWarning, module.replace(".", "/") + ".py", 1, module)
"""


def test_only_the_reconnects_discarded_coroutine_is_kept_out() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    shown = [line for line in done.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(shown) == 2, done.stderr
    assert not any("concurrency.py" in line and "'connect'" in line for line in shown)
