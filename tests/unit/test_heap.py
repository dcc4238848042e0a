"""pks.heap: the cyclic collector's thresholds, and live objects frozen out of its walks."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
from harness import seed_rows

from pks import heap
from pks.route.snapshot import build_snapshot


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


def test_a_dropped_snapshot_leaves_no_cyclic_garbage() -> None:
    # what `settle` relies on after a reload: the snapshot it replaces was frozen, so only
    # reference counting can free it — it must hold no reference cycle
    gc.collect()
    snapshot = build_snapshot(seed_rows())
    gc.collect()  # whatever building it left behind
    del snapshot
    assert gc.collect() == 0
