"""``class-scheduler``: the association-timeout sweep (APScheduler), the outbox relay with its
cleanup, and the Kafka consumer of NLP suggestions, in one process. Any number of replicas may
run; ``--no-sweep``, ``--no-relay`` and ``--no-consumer`` switch parts off."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from contextlib import AsyncExitStack

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from adapters_messaging.workers import MessagingWorkers
from adapters_otel import configure_telemetry
from adapters_otel import wanted as tracing_wanted
from adapters_sql import SchemaNotAtHeadError
from class_core.errors import ConfigurationError, DependencyUnavailableError
from class_core.startup import version_line
from class_runtime import Settings, open_runtime, startup_summary
from class_runtime.logging_setup import configure_logging
from class_scheduler.http import PortUnavailableError
from class_scheduler.jobs import schedule_sweep
from class_scheduler.ops import open_ops_endpoint

log = logging.getLogger("class_scheduler")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="class-scheduler",
        description=__doc__,
        epilog=(
            "Example: CLASS_MANAGEMENT_SERVICE_DATABASE_URL=postgresql://db/cms "
            "CLASS_MANAGEMENT_SERVICE_KAFKA_BOOTSTRAP_SERVERS=kafka:9092 class-scheduler"
        ),
    )
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("--no-sweep", action="store_true", help="do not run the timeout sweep")
    parser.add_argument("--no-relay", action="store_true", help="do not relay the outbox")
    parser.add_argument("--no-consumer", action="store_true", help="do not consume suggestions")
    return parser


async def run(settings: Settings, args: argparse.Namespace) -> None:
    """Run until SIGTERM/SIGINT, then stop each part gracefully."""
    scheduler: AsyncIOScheduler | None = None
    workers: MessagingWorkers | None = None
    async with open_runtime(settings) as opened, AsyncExitStack() as stack:
        assert opened.engine is not None  # class-scheduler refuses USE_MOCK_REPOSITORY
        try:
            workers = MessagingWorkers(
                settings.kafka,
                opened.runtime,
                opened.outbox_store,
                wakeup=opened.wakeup,
                relay=not args.no_relay,
                consumer=not args.no_consumer,
            )
            ops = await stack.enter_async_context(
                open_ops_endpoint(settings, opened.engine, workers, sweep=not args.no_sweep)
            )
            parts = [p for p, off in (("sweep", args.no_sweep), ("relay", not workers.relay),
                                      ("consumer", not workers.consumer)) if not off]  # fmt: skip
            message, fields = startup_summary(
                "class-scheduler",
                settings,
                workers=",".join(parts) or "none",
                http=ops.url if ops is not None else "off",
            )
            log.info(message, extra=fields)
            workers.start()
            scheduler = AsyncIOScheduler(timezone="UTC")
            if not args.no_sweep:
                schedule_sweep(
                    scheduler,
                    opened.runtime,
                    settings.timeout_check_interval_seconds,
                    ops.sweep if ops is not None else None,
                )
            scheduler.start()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            log.info("class-scheduler stopping")
        finally:
            if scheduler is not None:
                scheduler.shutdown(wait=False)
            if workers is not None:
                await workers.stop()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        tracing_wanted()  # a bad OTEL_TRACES_EXPORTER stops here with one line
    except ConfigurationError as exc:
        print(exc.detail, file=sys.stderr)
        raise SystemExit(2) from None
    if settings.use_mock_repository:
        print(
            "class-scheduler needs a database: USE_MOCK_REPOSITORY runs everything inside "
            "class-api (RUN_WORKERS)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    configure_logging(settings.log_level, settings.log_format)
    configure_telemetry("class-scheduler")  # only with the otel extra and OTEL_* variables
    try:
        asyncio.run(run(settings, args))
    except SchemaNotAtHeadError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(1) from None
    except DependencyUnavailableError as exc:
        print(f"database unreachable: {exc.detail}", file=sys.stderr)
        raise SystemExit(4) from None
    except PortUnavailableError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
