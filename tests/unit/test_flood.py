"""Flood and fraud protection in the core: bans and the per-source rate at the gate
(pks.guard.shield), blocked prefixes, max_cps, maxcps= and max_intl_calls as route() stages
(pks.route.fraud) — on the in-memory harness, asserting what the proxy sends."""

from __future__ import annotations

import logging

import pytest
from harness import CARRIER, GW1, GW2, PBX, PBX2, Net, invite, msgs, seed_rows

from pks.guard.shield import NEVER, Ban, Shield
from pks.net import Address
from pks.route import route
from pks.route.explain import explain
from pks.route.fraud import Limits, parse_ban_address
from pks.route.rows import BanRow, BlockRow, DispatcherRow, PeerRow
from pks.route.snapshot import SnapshotError, build_snapshot

OFFNET = "33123456789"
WALL = 1_800_000_000.0  # Unix time at the harness's now


def statuses(sends: list, dest: Address) -> list[int]:
    return [m.status for m in msgs(sends, dest) if m.status is not None]


def make(**rows: tuple[object, ...]) -> Net:
    return make_with({}, **rows)


def make_with(config: dict[str, object], **rows: tuple[object, ...]) -> Net:
    net = Net.make(seed_rows(**rows), **config)
    net.proxy.wall_offset = WALL - net.now
    return net


def call(net: Net, n: int, src: Address = PBX, user: str = OFFNET) -> list:
    return net.deliver(invite(user, src, call_id=f"c{n}", branch=f"z9hG4bKn{n}"), src)


# ---- bans -------------------------------------------------------------------------------------


def test_ban_addresses_are_canonical() -> None:
    assert parse_ban_address("192.0.2.7") == "192.0.2.7"
    assert parse_ban_address("192.0.2.7/32") == "192.0.2.7"
    assert parse_ban_address("192.0.2.7/24") == "192.0.2.0/24"
    assert parse_ban_address("[2001:DB8::1]") == "2001:db8::1"
    assert parse_ban_address("2001:db8::1/48") == "2001:db8::/48"
    with pytest.raises(ValueError, match="neither"):
        parse_ban_address("example.com")


def test_a_banned_peer_gets_nothing_until_its_ban_expires(caplog: pytest.LogCaptureFixture) -> None:
    bans = (BanRow(1, "127.0.0.30", "abuse", 0, int(WALL + 60)),)
    net = make(bans=bans)
    caplog.set_level(logging.WARNING, "pks.ban")
    assert call(net, 1) == []
    assert net.proxy.gate.shield.banned_drops == 1
    assert not net.proxy.admits(PBX.host)  # TCP connections too
    assert statuses(call(net, 2, CARRIER, "33202020201"), CARRIER) == [100]  # others pass
    net.now += 61
    net.proxy.gate.shield.sweep(net.now)
    assert [r.getMessage() for r in caplog.records][-1] == "unban 127.0.0.30: the table ban expired"
    assert statuses(call(net, 3), PBX) == [100]


def test_networks_v4_and_v6_are_banned() -> None:
    shield = Shield()
    shield.set_table(
        [Ban("127.0.0.0/24", NEVER, "net", "table"), Ban("2001:db8::/32", NEVER, "v6", "table")]
    )
    assert shield.active
    assert shield.banned("127.0.0.99", 0.0) and shield.banned("2001:db8:1::5", 0.0)
    assert not shield.banned("127.0.1.1", 0.0) and not shield.banned("2001:db9::1", 0.0)
    shield.set_table([])
    assert not shield.banned("127.0.0.99", 0.0) and not shield.active


def test_nothing_configured_costs_one_test() -> None:
    net = make()
    assert not net.proxy.gate.shield.active
    assert net.proxy.snapshot is not None and net.proxy.snapshot.fraud is None


def test_a_bad_ban_row_fails_the_build() -> None:
    with pytest.raises(SnapshotError, match="pks_ban id 4: 'nope' is neither"):
        build_snapshot(seed_rows(bans=(BanRow(4, "nope"),)))


# ---- the per-source rate ----------------------------------------------------------------------


def test_a_flooding_source_is_banned_once_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    net = make_with({"rate_limit": 3, "rate_peer_limit": 5, "rate_window": 2.0, "ban_time": 60})
    caplog.set_level(logging.WARNING, "pks.ban")
    for n in range(5):  # a known peer: 5 pass
        assert statuses(call(net, n), PBX) == [100]
    assert call(net, 5) == []  # the 6th: banned
    assert call(net, 6) == []
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["ban 127.0.0.30 for 60 s: 6 requests in 2 s (limit 5)"]
    assert statuses(call(net, 7, PBX2, "33299999999"), PBX2) == [100]  # another host passes
    net.now += 61
    net.proxy.gate.shield.sweep(net.now)
    assert caplog.records[-1].getMessage() == "unban 127.0.0.30: the auto ban expired"
    assert statuses(call(net, 8), PBX) == [100]


def test_a_stranger_has_the_lower_limit_and_responses_do_not_count() -> None:
    net = make_with({"rate_limit": 2, "rate_peer_limit": 0})
    stranger = Address("127.0.0.99", 5060)
    for n in range(2):
        call(net, n, stranger)
    assert not net.proxy.gate.shield.banned(stranger.host, net.now)
    call(net, 3, stranger)
    assert net.proxy.gate.shield.banned(stranger.host, net.now)
    for n in range(10):  # peer_limit 0: a known peer is never banned
        call(net, 10 + n)
    assert not net.proxy.gate.shield.banned(PBX.host, net.now)
    shield = net.proxy.gate.shield
    for _ in range(10):
        assert not shield.stops(GW1.host, b"SIP/2.0 200 OK\r\n", net.now, lambda h: True)


def test_counts_start_again_each_window() -> None:
    net = make_with({"rate_peer_limit": 3, "rate_window": 1.0})
    for n in range(9):
        assert statuses(call(net, n), PBX) == [100]
        net.now += 0.34


# ---- blocked prefixes -------------------------------------------------------------------------


def test_a_blocked_prefix_gets_403_with_its_reason() -> None:
    blocks = (BlockRow(1, "33123", None, "premium-rate"), BlockRow(2, "332999", "pbx2", "sat"))
    net = make(blocks=blocks)
    (reply,) = msgs(call(net, 1), PBX)
    assert (reply.status, reply.reason) == (403, "Destination Blocked")
    assert net.proxy.stats["refused_blocked"] == 1
    assert statuses(call(net, 2, PBX, "33223456789"), PBX) == [100]
    assert statuses(call(net, 3, PBX2, "33299999999"), PBX2) == [403]  # pbx2's own rule
    assert statuses(call(net, 4, PBX, "33299999999"), PBX) != [403]  # not pbx1's
    snap = net.proxy.snapshot
    assert snap is not None
    shown = explain(snap, PBX.host, PBX.port, OFFNET)
    assert shown.verdict == "reply"
    assert shown.reason == (
        "403 Destination Blocked: 33123456789 starts with 33123, blocked for every peer:"
        " premium-rate"
    )
    assert shown.fraud is not None and shown.fraud["blocked"]["reason"] == "premium-rate"


def test_a_bad_prefix_fails_the_build() -> None:
    with pytest.raises(SnapshotError, match="pks_block id 3: prefix '33x'"):
        build_snapshot(seed_rows(blocks=(BlockRow(3, "33x"),)))


# ---- calls per second ---------------------------------------------------------------------------


def peers(**limits: int | None) -> tuple[PeerRow, ...]:
    return (PeerRow(1, "customer", "pbx one", "pbx1", 23, **limits),)  # type: ignore[arg-type]


def test_max_cps_plus_one_gets_503_with_retry_after() -> None:
    net = make(peers=peers(max_cps=3))
    for n in range(3):
        assert statuses(call(net, n), PBX) == [100]
    (reply,) = msgs(call(net, 3), PBX)
    assert reply.status == 503 and reply.get("retry-after") == b"1"
    assert net.proxy.stats["refused_max_cps"] == 1
    assert net.proxy.limits.peers.refused == {"pbx1": 1}
    assert statuses(call(net, 4, PBX2, "33299999999"), PBX2) == [100]  # another peer
    net.now += 1.0  # the next second
    assert statuses(call(net, 5), PBX) == [100]


def test_other_instances_calls_count_too() -> None:
    net = make(peers=peers(max_cps=3))
    rates = net.proxy.limits.peers
    rates.others, rates.others_second = {"pbx1": 2}, int(WALL)
    assert statuses(call(net, 1), PBX) == [100]
    assert statuses(call(net, 2), PBX) == [503]


def test_gateway_maxcps_skips_a_busy_gateway() -> None:
    rows = seed_rows().dispatcher
    gw = (
        *rows[:1],
        DispatcherRow(2, 21, f"sip:{GW1.host}:{GW1.port}", 0, 0, "maxcps=1", "gw1"),
        DispatcherRow(3, 21, f"sip:{GW2.host}:{GW2.port}", 0, 0, "maxcps=1", "gw2"),
        *rows[3:],
    )
    net = make(dispatcher=gw)
    firsts = []
    for n in range(2):
        sent = call(net, n)
        firsts.append(next(s.dest for s in sent if s.dest in (GW1, GW2)))
    assert sorted(firsts, key=str) == [GW1, GW2]
    (reply,) = msgs(call(net, 2), PBX)
    assert reply.status == 503 and reply.get("retry-after") == b"1"
    assert net.proxy.stats["refused_gateway_cps"] == 1


def test_explain_counts_no_call() -> None:
    net = make(peers=peers(max_cps=1))
    snap = net.proxy.snapshot
    assert snap is not None
    limits = net.proxy.limits
    for _ in range(3):
        shown = explain(snap, PBX.host, PBX.port, OFFNET, limits=limits, now=net.now)
        assert shown.verdict == "forward"
    assert shown.fraud == {"blocked": None, "max_cps": 1, "max_intl_calls": None}
    assert statuses(call(net, 1), PBX) == [100]


# ---- international calls ------------------------------------------------------------------------


def test_max_intl_calls() -> None:
    net = make_with({"local_prefixes": ("+331",)}, peers=peers(max_intl_calls=1))
    assert statuses(call(net, 1, PBX, "+33223456789"), PBX) == [100]
    assert net.proxy.calls.intl_count("pbx1") == 1
    (reply,) = msgs(call(net, 2, PBX, "+33323456789"), PBX)
    assert (reply.status, reply.reason) == (403, "International Calls Limit")
    assert statuses(call(net, 3, PBX, "+33123456789"), PBX) == [100]  # local: not counted
    assert statuses(call(net, 4, PBX, OFFNET), PBX) == [100]  # national
    (ctx_call,) = [c for c in net.proxy.calls._calls.values() if c.intl]
    net.proxy.calls.close(ctx_call)
    assert net.proxy.calls.intl_count("pbx1") == 0


def test_limits_default_to_none() -> None:
    snap = make().proxy.snapshot
    assert snap is not None
    decision = route(snap, PBX.host, PBX.port, OFFNET, limits=Limits(), now=1.0)
    assert type(decision).__name__ == "Forward"
