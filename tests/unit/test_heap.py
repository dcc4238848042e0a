"""pks.heap: the cyclic collector's thresholds, live objects frozen out of its walks, and the
premise of it all: the proxy's calls and snapshots form no reference cycle."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest
from harness import CARRIER, PBX, Net, answer, bye, invite, msgs, seed_rows

from pks import heap
from pks.route.snapshot import build_snapshot

DID = "33202020201"  # a carrier's call to the PBX (dpid 1)
OFFNET = "33123456789"  # the PBX's call out, over set 21's two gateways (dpid 2)


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


def _calls(net: Net) -> None:
    """Calls down the paths a transaction can take: answered and hung up, refused, failed
    over on silence and on a 503, cancelled while ringing, malformed."""
    fwd = msgs(net.deliver(invite(DID, CARRIER), CARRIER), PBX)[0]
    net.deliver(answer(fwd, 180, "Ringing"), PBX)
    net.deliver(answer(fwd, 200, "OK", contact=f"sip:pbx@{PBX}"), PBX)
    hang_up = bye(
        fwd,
        f"sip:caller@{CARRIER}",
        PBX,
        from_=f"<sip:{DID}@127.0.0.10>;tag=tt1",
        to=f"<sip:caller@{CARRIER.host}>;tag=ft1",
    )
    fwd_bye = msgs(net.deliver(hang_up, PBX), CARRIER)[0]
    net.deliver(answer(fwd_bye, 200, "OK"), CARRIER)
    out = net.deliver(invite(OFFNET, PBX, call_id="c2", branch="z9hG4bK2"), PBX)
    first = next(s for s in out if s.dest != PBX)
    net.advance(6.0)  # silence: the next gateway
    second = next(s for s in net.sent if s.dest not in (PBX, first.dest))
    net.deliver(answer(msgs([second])[0], 503, "Down"), second.dest)
    ring = msgs(net.deliver(invite(DID, CARRIER, call_id="c3", branch="z9hG4bK3"), CARRIER), PBX)
    net.deliver(answer(ring[0], 180, "Ringing"), PBX)
    cancel = invite(DID, CARRIER, call_id="c3", branch="z9hG4bK3", method="CANCEL")
    down = msgs(net.deliver(cancel, CARRIER), PBX)[0]
    net.deliver(answer(down, 200, "OK"), PBX)
    net.deliver(answer(ring[0], 487, "Request Terminated"), PBX)
    net.deliver(invite("999", CARRIER, call_id="c4", branch="z9hG4bK4"), CARRIER)
    net.deliver(b"garbage\r\n\r\n", CARRIER)
    net.drain()


def test_calls_leave_no_cyclic_garbage() -> None:
    # what freezing the heap every second relies on (heap.Keeper): a call's objects, frozen
    # while it runs, are freed by reference counting once it ends
    net = Net.make()
    gc.collect()
    gc.disable()
    try:
        _calls(net)
        assert net.proxy.transactions == 0
        del net
        assert gc.collect() == 0
    finally:
        gc.enable()


class Node:
    other: object = None


def test_keeper_collects_young_cycles_then_freezes_the_rest(restore_gc: None) -> None:
    async def scenario() -> tuple[bool, bool]:
        keeper = heap.Keeper(sweep_interval=0, freeze_interval=0.01)
        keeper.start()
        young = [object()]
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b  # a cycle that dies young
        await asyncio.sleep(0.1)
        keeper.close()
        return any(o is young for o in gc.get_objects()), gone() is None

    walked, freed = asyncio.run(scenario())
    assert not walked and freed
    assert gc.get_freeze_count() > 0


def test_keeper_sweeps_cycles_that_died_frozen(restore_gc: None) -> None:
    async def scenario(sweep_interval: float) -> tuple[bool, int]:
        keeper = heap.Keeper(sweep_interval=sweep_interval, freeze_interval=0.01)
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        heap.settle()
        del a, b  # garbage now, but frozen: only a sweep finds it
        keeper.start()
        await asyncio.sleep(0.2)
        keeper.close()
        return gone() is None, keeper.sweeps

    freed, sweeps = asyncio.run(scenario(sweep_interval=0.05))
    assert freed and sweeps >= 1
    freed, sweeps = asyncio.run(scenario(sweep_interval=0))
    assert not freed and sweeps == 0


def test_keeper_rejects_bad_intervals() -> None:
    with pytest.raises(ValueError, match="positive"):
        heap.Keeper(sweep_interval=-1)
    with pytest.raises(ValueError, match="positive"):
        heap.Keeper(sweep_interval=60, freeze_interval=0)
