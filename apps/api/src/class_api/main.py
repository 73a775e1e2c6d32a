"""``class-api``: serve the HTTP API with uvicorn (contract §2)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from litestar import Litestar

from adapters_otel import configure_telemetry
from adapters_otel import wanted as tracing_wanted
from class_api.logs import configure_logging
from class_core.errors import ConfigurationError, DependencyUnavailableError
from class_core.startup import docs_url, version_line
from class_runtime import Settings, startup_summary

PROG = "class-api"


def _fail(message: str, code: int) -> None:
    print(f"{PROG}: {message}", file=sys.stderr)
    raise SystemExit(code)


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Class Management Service HTTP API")
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("--host", default=settings.host, help=f"default {settings.host}")
    parser.add_argument("--port", type=int, default=settings.port, help=f"default {settings.port}")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (1 with SQLite or in-memory)"
    )
    return parser


async def _check_database(settings: Settings) -> None:
    """Exit before serving when the schema is not at head (one line naming
    ``class-admin db upgrade``); an unreachable database is reported by /healthz instead."""
    import adapters_sql

    engine = adapters_sql.create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        await adapters_sql.ensure_at_head(engine)
    except DependencyUnavailableError:
        print(f"{PROG}: warning: the database is unreachable; starting anyway", file=sys.stderr)
    finally:
        await engine.dispose()


def serve_app() -> Litestar:
    """The uvicorn factory, called in every server process."""
    from class_api.app import create_app

    settings = Settings.from_env()
    configure_logging(settings)
    configure_telemetry(PROG)  # only with the otel extra and OTEL_* variables
    return create_app(settings)


def main(argv: Sequence[str] | None = None) -> None:
    given = list(sys.argv[1:] if argv is None else argv)
    if "--version" in given:  # before the settings: a bad variable must not hide the version
        print(version_line())
        return
    try:
        settings = Settings.from_env()
        tracing_wanted()  # a bad OTEL_TRACES_EXPORTER stops here, not in a server process
    except ConfigurationError as exc:
        _fail(f"configuration error: {exc.detail}", 2)
    args = _parser(settings).parse_args(argv)
    if not 1 <= args.port <= 65535:
        _fail("--port must be between 1 and 65535", 2)
    if args.workers < 1:
        _fail("--workers must be at least 1", 2)
    if args.workers > 1 and settings.database_kind != "postgresql":
        _fail(f"--workers must be 1 with the {settings.database_kind} database", 2)
    if settings.database_kind != "memory":
        import adapters_sql

        try:
            asyncio.run(_check_database(settings))
        except ConfigurationError as exc:
            _fail(f"configuration error: {exc.detail}", 2)
        except adapters_sql.SchemaNotAtHeadError as exc:
            _fail(str(exc), 1)
    configure_logging(settings)
    workers = "in-process" if settings.run_workers else "off (run class-scheduler)"
    message, fields = startup_summary(
        PROG, settings, workers=workers, docs=docs_url(args.host, args.port)
    )
    logging.getLogger("class_api").info(message, extra=fields)

    import uvicorn

    from class_api.http_guard import PROTOCOL

    uvicorn.run(
        "class_api.main:serve_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,  # access lines would carry query strings (names, emails)
        lifespan="on",
        http=PROTOCOL,  # uvicorn's httptools protocol plus a 10 s header deadline (§12)
    )


if __name__ == "__main__":  # pragma: no cover
    main()
