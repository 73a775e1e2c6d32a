"""Process logging of the API: the shared set-up plus uvicorn's loggers routed through it."""

from __future__ import annotations

import logging
import warnings

from class_runtime import Settings, logging_setup


def configure_logging(settings: Settings) -> None:
    """Root logging as every app has it; uvicorn's loggers propagate to it, except the access
    log, which stays off: its lines would carry query strings (names, emails)."""
    logging_setup.configure_logging(settings.log_level, settings.log_format)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    # The read-only unit of work first tries to take an idle pooled connection without a
    # greenlet (adapters_sql.uow); when that connection has to be reopened, SQLAlchemy stops
    # at MissingGreenlet before any I/O and discards the driver's connect coroutine, which
    # Python reports as never awaited. Expected there, so kept out of the process's output.
    warnings.filterwarnings(
        "ignore",
        message="coroutine 'connect' was never awaited",
        category=RuntimeWarning,
        module=r"sqlalchemy\.util\.concurrency",
    )
