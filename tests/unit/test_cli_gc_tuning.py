"""``class_cli.gc_tuning.fewer_collections``: fewer cyclic collections during bulk work, and
everything as it was afterwards."""

from __future__ import annotations

import gc
import weakref

import pytest

from class_cli.gc_tuning import BULK_GEN0_THRESHOLD, fewer_collections


class Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the cyclic collector frees it


def test_thresholds_raised_inside_and_restored_after() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        inside = gc.get_threshold()
        assert inside[0] >= BULK_GEN0_THRESHOLD
        assert inside[1] >= before[1]
        assert inside[2] >= before[2]
        assert gc.get_freeze_count() > 0  # what was alive before is left alone
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_restored_when_the_work_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_cycles_made_inside_are_still_collected() -> None:
    with fewer_collections():
        node = Node()
        gone = weakref.ref(node)
        del node
        gc.collect()
        assert gone() is None
