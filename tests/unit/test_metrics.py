"""pks.metrics without a server: two workers' reports added up into one view, the exposition
parsed back, labels bounded, the event-loop lag of a loop kept busy, the tallies of calls."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from pks.forward.calls import CallTable
from pks.health.state import GatewayStates
from pks.metrics.exposition import DROPS, render
from pks.metrics.figures import ReloadLog, gather
from pks.metrics.lag import LoopLag


def worker(index: int, stats: dict[str, int], tallies: list[list[object]], lag: float) -> dict:
    return {
        "index": index,
        "stats": stats,
        "transactions": 3,
        "calls": 2,
        "by_peer": {"acme": 2},
        "metrics": {"tallies": tallies, "lag": [lag, lag * 2]},
    }


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_two_workers_make_one_view() -> None:
    first = {"req.INVITE": 5, "2xx": 4, "dropped_unknown": 1}
    second = {"req.INVITE": 7, "refused_blocked": 2}
    reports = [
        worker(0, first, [["acme", 21, 5, 4, 1, 0]], 0.001),
        worker(1, second, [["acme", 21, 7, 6, 0, 1], [None, 22, 1, 0, 1, 0]], 0.004),
    ]
    log = ReloadLog()
    log.record(True, 0.25)
    log.record(False, 0.5)
    now = time.time()
    figures = gather(
        reports, None, reloads=log, started_at=now, database_up=False, routing_from_cache=True
    )
    got = samples(render(figures).decode())
    assert got[("pks_workers", ())] == 2
    assert got[("pks_sip_requests_total", (("method", "INVITE"),))] == 12
    assert got[("pks_sip_requests_total", (("method", "other"),))] == 0
    assert got[("pks_sip_responses_sent_total", (("class", "2xx"),))] == 4
    acme = (("peer", "acme"), ("set", "21"))
    assert got[("pks_calls_started_total", acme)] == 12
    assert got[("pks_calls_answered_total", acme)] == 10
    assert got[("pks_calls_failed_total", acme)] == 1
    assert got[("pks_calls_cancelled_total", acme)] == 1
    assert got[("pks_calls_failed_total", (("peer", ""), ("set", "22")))] == 1
    assert got[("pks_calls_in_progress", ())] == 4
    assert got[("pks_peer_calls_in_progress", (("peer", "acme"),))] == 4
    assert got[("pks_transactions", ())] == 6
    assert got[("pks_event_loop_lag_seconds", (("worker", "1"),))] == 0.004
    assert got[("pks_event_loop_lag_max_seconds", (("worker", "0"),))] == 0.002
    # every fixed reason always there; a counter added elsewhere shows once counted
    for reason in DROPS:
        assert ("pks_dropped_total", (("reason", reason),)) in got
    assert got[("pks_dropped_total", (("reason", "unknown_source"),))] == 1
    assert got[("pks_dropped_total", (("reason", "blocked"),))] == 2
    assert got[("pks_reloads_total", (("result", "ok"),))] == 1
    assert got[("pks_reloads_total", (("result", "failed"),))] == 1
    assert got[("pks_reload_duration_seconds_count", ())] == 2
    assert got[("pks_reload_duration_seconds_sum", ())] == 0.75
    assert got[("pks_reload_last_success", ())] == 0
    assert got[("pks_database_up", ())] == 0
    assert got[("pks_routing_from_cache", ())] == 1


def test_call_tallies_by_peer_and_set() -> None:
    table = CallTable(GatewayStates())
    answered = table.open("a", "1", "acme", "192.0.2.1", 21)
    busy = table.open("b", "1", "acme", "192.0.2.1", 21)
    cancelled = table.open("c", "1", "acme", "192.0.2.1", 21)
    table.open("d", "1", None, "192.0.2.9", 22)
    table.answered(answered, 1.0)
    table.fail(busy, 486)
    table.fail(cancelled, 487)
    table.fail(answered, 500)  # answered: no longer a failure
    rows = sorted((t.row() for t in table.tallies.values()), key=str)
    assert rows == [["acme", 21, 3, 1, 1, 1], [None, 22, 1, 0, 0, 0]]
    assert len(table) == 2  # the answered call and the ringing one


async def test_loop_lag_sees_a_busy_loop() -> None:
    lag = LoopLag(interval=0.05)
    lag.start()
    try:
        await asyncio.sleep(0.12)
        time.sleep(0.2)  # the loop cannot run its timers meanwhile
        await asyncio.sleep(0.12)
    finally:
        lag.close()
    assert lag.max >= 0.1
    assert lag.last < lag.max
    assert Counter(lag.samples)  # samples were taken
