"""Every event type renders byte for byte as it did when the core rendered envelopes itself
(issue 13 moved the renderer to ``adapters_sql.envelopes``): topic, key, headers and the
§5.1 envelope text, with and without a trace context, and the erasure rewrite of each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters_sql.envelopes import JsonEnvelopes
from class_core.events import EVENT_TYPES, ClassDeletedV1
from class_core.testing import InMemoryStore
from class_core.tracing import trace_context
from tests.unit.envelope_cases import AWKWARD, STUDENT, TRACEPARENT, cases, event_id

GOLDEN: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "data" / "golden_envelopes.json").read_text(encoding="utf-8")
)
CASES = cases()
FORMER = (AWKWARD, "Lovelace", "a@b.se", "Bee")


def test_the_golden_file_covers_every_case_and_event_type() -> None:
    assert [(g["name"], g["traced"]) for g in GOLDEN] == [
        (name, traced) for name, *_ in CASES for traced in (False, True)
    ]
    assert {type(e) for _, e, _ in CASES} == set(EVENT_TYPES)


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_bytes_equal_the_previous_renderer(index: int, traced: bool) -> None:
    name, event, kwargs = CASES[index]
    golden = GOLDEN[2 * index + traced]
    assert (golden["name"], golden["traced"]) == (name, traced)
    envelopes = JsonEnvelopes()
    if traced:
        with trace_context(TRACEPARENT):
            msg = envelopes.render(event, event_id=event_id(index), **kwargs)
    else:
        msg = envelopes.render(event, event_id=event_id(index), **kwargs)
    assert msg.payload.encode() == golden["payload"].encode()
    assert (msg.topic, msg.key) == (golden["topic"], golden["key"])
    assert [list(h) for h in msg.headers] == golden["headers"]
    assert (msg.event_id, msg.created_at) == (event_id(index), kwargs["at"])
    assert envelopes.erase(msg.payload, STUDENT, FORMER) == golden["erased"]


def test_some_envelopes_are_rewritten_on_erasure_and_others_left_alone() -> None:
    # The golden erasure rewrites are not all "no change": the check above can fail.
    erased = [g for g in GOLDEN if g["erased"] is not None]
    assert 0 < len(erased) < len(GOLDEN)
    for g in erased:
        before, after = json.loads(g["payload"]), json.loads(g["erased"])
        assert after["event_id"] == before["event_id"]
        assert AWKWARD not in g["erased"]


async def test_an_in_memory_store_without_a_renderer_says_so_when_it_must_render() -> None:
    store = InMemoryStore()  # no renderer: fine until an event must be written
    _, event, kwargs = CASES[4]
    assert isinstance(event, ClassDeletedV1)
    async with store.unit_of_work() as uow:
        uow.record([event], kwargs["correlation_id"], kwargs["at"])
        with pytest.raises(RuntimeError, match="renderer"):
            await uow.commit()
    assert store.commits == 0
    assert store.tables.outbox == {}
