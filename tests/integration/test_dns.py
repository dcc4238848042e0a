"""RFC 3263 lookups against a real DNS server on loopback (dnslib), and the refresher."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))
from dnstest import LocalDns
from pks.config import parse_dns_servers
from pks.dns.cache import DnsCache, SrvRecord, order_srv
from pks.dns.refresh import DnsRefresher
from pks.dns.resolve import Resolver, make_resolver
from pks.route.rows import DispatcherRow, TableRows
from pks.route.snapshot import build_snapshot

ZONE = """
$TTL 60
_sip._udp.gw.test.  30 IN SRV 10 60 5071 a.gw.test.
_sip._udp.gw.test.  30 IN SRV 10 40 5072 b.gw.test.
_sip._udp.gw.test.  30 IN SRV 20 0  5073 c.gw.test.
_sip._tcp.gw.test.  30 IN SRV 10 0  5080 a.gw.test.
a.gw.test.          20 IN A   127.0.0.71
b.gw.test.          20 IN A   127.0.0.72
c.gw.test.          20 IN A   127.0.0.73
plain.test.         10 IN A   127.0.0.74
dual.test.          10 IN A   127.0.0.75
dual.test.          10 IN AAAA ::1
"""


@pytest.fixture(scope="module")
def dns_server():
    server = LocalDns(ZONE).start()
    yield server
    server.stop()


def resolver(server: LocalDns) -> Resolver:
    return Resolver(
        make_resolver(parse_dns_servers(f"{server.host}:{server.port}"), timeout=1.0),
        rng=random.Random(1),
    )


def test_srv_priority_order_and_weights() -> None:
    records = [SrvRecord(20, 0, 3, "c"), SrvRecord(10, 60, 1, "a"), SrvRecord(10, 40, 2, "b")]
    firsts = [order_srv(records, random.Random(i))[0].target for i in range(1000)]
    assert all(order_srv(records, random.Random(i))[2].target == "c" for i in range(50))
    assert 500 < firsts.count("a") < 700 and firsts.count("a") + firsts.count("b") == 1000


def test_srv_then_a_records(dns_server) -> None:
    got = asyncio.run(resolver(dns_server).resolve(("gw.test", 5060, "udp", "srv"), 100.0))
    assert got.error is None
    assert set(got.addresses[:2]) == {("127.0.0.71", 5071), ("127.0.0.72", 5072)}
    assert got.addresses[2] == ("127.0.0.73", 5073)  # lower priority last
    assert got.expires == 120.0  # the smallest TTL of the answers used (A: 20 s)


def test_transport_picks_the_srv_name(dns_server) -> None:
    got = asyncio.run(resolver(dns_server).resolve(("gw.test", 5060, "tcp", "srv"), 0.0))
    assert got.addresses == (("127.0.0.71", 5080),)


def test_no_srv_falls_back_to_a_and_aaaa(dns_server) -> None:
    r = resolver(dns_server)
    got = asyncio.run(r.resolve(("plain.test", 5060, "udp", "srv"), 0.0))
    assert got.addresses == (("127.0.0.74", 5060),) and got.expires == 10.0
    got = asyncio.run(r.resolve(("dual.test", 5090, "udp", "a"), 0.0))
    assert got.addresses == (("127.0.0.75", 5090), ("::1", 5090))


def test_unknown_name_is_a_cached_failure(dns_server) -> None:
    got = asyncio.run(resolver(dns_server).resolve(("nowhere.test", 5060, "udp", "srv"), 0.0))
    assert got.addresses == () and got.error and got.expires == 5.0


def test_unreachable_dns_server_is_a_failure_not_a_hang() -> None:
    r = Resolver(make_resolver(parse_dns_servers("127.0.0.1:9"), timeout=0.3))
    got = asyncio.run(r.resolve(("gw.test", 5060, "udp", "srv"), 0.0))
    assert got.addresses == () and got.error


def test_refresher_primes_and_the_cache_expands_in_failover_order(dns_server) -> None:
    named = DispatcherRow(1, 7, "sip:gw.test", 0, 0, "", "")
    rows = TableRows(dispatcher=(named, DispatcherRow(2, 7, "sip:nowhere.test:5062", 0, 0, "", "")))
    snap = build_snapshot(rows)
    cache = DnsCache()
    clock = [1000.0]
    refresher = DnsRefresher(cache, resolver(dns_server), lambda: clock[0], lambda: snap)
    asyncio.run(refresher.prime(snap))
    named, dead = snap.dispatcher.sets[7].targets[1], snap.dispatcher.sets[7].targets[0]
    expanded = cache.expand(named, clock[0])
    assert [t.port for t in expanded][2] == 5073 and all(t.dns == "" for t in expanded)
    assert cache.expand(dead, clock[0]) == ()
    clock[0] += 30  # past the TTL: expired entries are wanted again, then refreshed
    assert cache.expand(named, clock[0]) == ()
    asyncio.run(refresher.refresh_once())
    assert len(cache.expand(named, clock[0])) == 3


def test_a_dns_outage_serves_the_last_answer_until_max_stale() -> None:
    """RFC 8767: failed refreshes keep the good answer (30 s at a time), up to max_stale."""
    server = LocalDns(ZONE).start()
    rows = TableRows(dispatcher=(DispatcherRow(1, 7, "sip:plain.test:5060", 0, 0, "", "gw"),))
    snap = build_snapshot(rows)
    cache = DnsCache()
    clock = [1000.0]
    refresher = DnsRefresher(
        cache, resolver(server), lambda: clock[0], lambda: snap, max_stale=100.0
    )
    named = snap.dispatcher.sets[7].targets[0]
    asyncio.run(refresher.prime(snap))
    assert [t.host for t in cache.expand(named, clock[0])] == ["127.0.0.74"]
    server.stop()  # the outage

    for step in range(3):  # past the 10 s TTL, then twice 30 s: still the last answer
        clock[0] += 10 if step == 0 else 30
        asyncio.run(refresher.refresh_once())
        assert [t.host for t in cache.expand(named, clock[0])] == ["127.0.0.74"], step
    clock[0] = 1000.0 + 10 + 100  # max_stale past the TTL: the name is out
    asyncio.run(refresher.refresh_once())
    assert cache.expand(named, clock[0]) == ()
