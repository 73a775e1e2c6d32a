"""The dead-letter replay script of docs/operations.md works as written: it re-publishes the
records of one ``dlt_reason`` to their original topic, with their key and original headers,
and leaves the others alone."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.broker import BrokerProcess, produce_raw, read_records

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
DLT = "huleedu.batch.author.matches.suggested.v1.dlt"


def _script() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    (script,) = [b for b in blocks if "dlt_original_topic" in b]
    return script


async def test_the_documented_replay_script_republishes_one_reason(
    kafka_broker_factory: Callable[[], BrokerProcess], tmp_path: Path
) -> None:
    broker = kafka_broker_factory()
    original = "replay-test.suggestions"

    def dead(reason: str) -> list[tuple[str, bytes]]:
        return [
            ("origin", b"nlp"),
            ("dlt_reason", reason.encode()),
            ("dlt_detail", b"data.class_id: no such class"),
            ("dlt_original_topic", original.encode()),
        ]

    await produce_raw(
        broker.bootstrap,
        DLT,
        [
            (b"batch-1", b'{"n": 1}', dead("unknown_class")),
            (b"batch-2", b"not json", dead("invalid_json")),
            (b"batch-3", b'{"n": 3}', dead("unknown_class")),
        ],
    )
    path = tmp_path / "replay_dlt.py"
    path.write_text(_script(), encoding="utf-8")
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(path), broker.bootstrap, "unknown_class"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "re-published 2 dead letters (unknown_class)"

    replayed = await read_records(broker.bootstrap, [original], until=lambda rs: len(rs) >= 2)
    assert sorted((r.key, r.value, tuple(r.headers)) for r in replayed) == [
        (b"batch-1", b'{"n": 1}', (("origin", b"nlp"),)),
        (b"batch-3", b'{"n": 3}', (("origin", b"nlp"),)),
    ]
