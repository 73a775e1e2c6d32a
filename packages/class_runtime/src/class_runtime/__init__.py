"""The composition of the core with its adapters, shared by every app and by embedding
services: :class:`Settings` (every package's settings, read from one environment),
:func:`open_runtime` (settings → engine, notifier, runtime, outbox store, wake-ups) and
:func:`sweep_once` (the one periodic job: the timeout sweep and the retention purges).

It sits between the adapters and the apps (import-linter keeps it there): the apps import it,
it imports the core and both adapter packages, nothing below imports it.
"""

from class_runtime.factory import OpenRuntime, matching_policy, open_runtime
from class_runtime.settings import AppSettings, Settings
from class_runtime.startup import startup_summary
from class_runtime.sweep import SweepObserver, sweep_once

__all__ = [
    "AppSettings",
    "OpenRuntime",
    "Settings",
    "SweepObserver",
    "matching_policy",
    "open_runtime",
    "startup_summary",
    "sweep_once",
]
