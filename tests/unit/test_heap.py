"""pks.heap: the cyclic collector's thresholds, and live objects frozen out of its walks."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from pks import heap


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tune_sets_the_thresholds(restore_gc: None) -> None:
    heap.tune()
    assert gc.get_threshold() == heap.THRESHOLDS


def test_settle_freezes_what_is_alive(restore_gc: None) -> None:
    alive = [object()]  # a container: tracked by the collector
    assert gc.is_tracked(alive) and any(o is alive for o in gc.get_objects())
    heap.settle()
    assert gc.get_freeze_count() > 0
    assert not any(o is alive for o in gc.get_objects())  # out of every generation's walk
    later = [object()]
    assert any(o is later for o in gc.get_objects())  # what comes after is collected as usual


def test_frozen_objects_are_still_freed_by_reference_counting(restore_gc: None) -> None:
    class Table:
        pass

    table = Table()
    gone = weakref.ref(table)
    heap.settle(collect=True)
    del table
    assert gone() is None  # a snapshot replaced by a reload goes away
