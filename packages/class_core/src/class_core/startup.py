"""What a process says about itself: ``--version`` and the parts of its start-up line that need
no configuration (contract §12): a database URL without its password, the API's docs page.
The line itself is ``class_runtime.startup_summary`` (it reads the composed settings).
"""

from __future__ import annotations

from importlib import metadata
from urllib.parse import urlsplit, urlunsplit

DISTRIBUTION = "class-management"


def version() -> str:
    """The installed version of the ``class-management`` distribution."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def version_line() -> str:
    """What ``--version`` prints: ``class-management <version>``."""
    return f"{DISTRIBUTION} {version()}"


def redacted_url(url: str) -> str:
    """``url`` without its password (and without a query string, which may carry one)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparsable URL>"
    if not parts.netloc:  # sqlite+aiosqlite:///path: no credentials to hide
        return url.split("?", 1)[0]
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def docs_url(host: str, port: int) -> str:
    """The docs page of an API listening on ``host:port`` (a wildcard host → ``localhost``)."""
    shown = "localhost" if host in {"0.0.0.0", "::", ""} else host  # noqa: S104
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/schema"
