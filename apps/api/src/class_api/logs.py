"""Process logging of the API: the shared set-up plus uvicorn's loggers routed through it."""

from __future__ import annotations

import logging

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
