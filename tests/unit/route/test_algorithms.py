"""Dispatcher algorithms per set (pks_set override, global default) and their distributions."""

from __future__ import annotations

from collections import Counter

import pytest

from pks.route import DispatcherRow, SnapshotError, select
from pks.route.algorithms import parse_algorithm
from pks.route.dispatch import ds_hash
from pks.route.rows import SetRow, TableRows
from pks.route.snapshot import build_snapshot


def gw(id: int, port: int, *, priority: int = 0, attrs: str = "", flags: int = 0):
    return DispatcherRow(id, 1, f"sip:127.0.0.1:{port}", flags, priority, attrs, "")


def snap_with(alg: str, *rows: DispatcherRow, default: str = "round-robin"):
    return build_snapshot(TableRows(dispatcher=rows, sets=(SetRow(1, alg),)), algorithm=default)


def picks(snap, n: int, key=None, usable=None) -> Counter[int]:
    return Counter(select(snap, 1, usable, key)[0].port for _ in range(n))


def test_kamailio_hash_function() -> None:
    assert ds_hash(b"alice", b"server.com") == 1412806172


def test_names_and_kamailio_numbers() -> None:
    assert parse_algorithm("4") == "round-robin"
    assert parse_algorithm(9) == "weighted"
    assert parse_algorithm("Hash_CallID") == "hash-callid"
    with pytest.raises(ValueError, match="unknown dispatcher algorithm"):
        parse_algorithm("fastest")


def test_bad_override_fails_the_build_naming_the_set() -> None:
    with pytest.raises(SnapshotError, match="pks_set setid 1: unknown dispatcher algorithm"):
        snap_with("nope", gw(1, 5091))


def test_global_default_applies_without_override() -> None:
    rows = TableRows(dispatcher=(gw(1, 5091, priority=1), gw(2, 5092)))
    snap = build_snapshot(rows, algorithm="priority")
    assert picks(snap, 5) == Counter({5091: 5})


def test_weights_3_to_1_are_exact_over_a_few_calls() -> None:
    snap = snap_with("9", gw(1, 5091, attrs="weight=3"), gw(2, 5092, attrs="weight=1"))
    first_four = [select(snap, 1)[0].port for _ in range(4)]
    assert Counter(first_four) == Counter({5092: 1, 5091: 3})
    assert picks(snap, 400) == Counter({5092: 100, 5091: 300})


def test_weighted_failover_continues_past_the_chosen_one() -> None:
    snap = snap_with(
        "weighted", gw(1, 5091, attrs="weight=1"), gw(2, 5092, attrs="weight=1"), gw(3, 5093)
    )
    for _ in range(4):
        order = [t.port for t in select(snap, 1)]
        assert sorted(order) == [5091, 5092, 5093] and order[0] != 5093


def test_weighted_share_of_an_unusable_gateway_goes_to_the_next() -> None:
    snap = snap_with(
        "weighted",
        gw(1, 5091, attrs="weight=3"),
        gw(2, 5092, attrs="weight=1"),
        gw(3, 5093, attrs="weight=1"),
    )
    order = [d.target.port for d in snap.dispatcher_sets()[0].destinations]
    assert order == [5093, 5092, 5091]  # equal priorities: reverse load order
    down = {5092}
    counts = picks(snap, 500, usable=lambda t: t.port not in down)
    assert counts == Counter({5091: 400, 5093: 100})  # 5092's share went to 5091 (next)


def test_relative_weight_shares_over_usable_gateways_only() -> None:
    snap = snap_with(
        "11",
        gw(1, 5091, attrs="rweight=2"),
        gw(2, 5092, attrs="rweight=1"),
        gw(3, 5093, attrs="rweight=1"),
    )
    counts = picks(snap, 300, usable=lambda t: t.port != 5092)
    assert counts == Counter({5091: 200, 5093: 100})


def test_hash_of_call_id_keeps_a_call_on_one_gateway_and_spreads_calls() -> None:
    snap = snap_with("hash-callid", gw(1, 5091), gw(2, 5092), gw(3, 5093))
    keys = {"hash-callid": "a84b4c76e66710@pc33.atlanta.com"}
    same = {select(snap, 1, None, keys.get)[0].port for _ in range(20)}
    assert len(same) == 1
    spread = Counter(
        select(snap, 1, None, {"hash-callid": f"call-{i}@host"}.get)[0].port for i in range(600)
    )
    assert set(spread) == {5091, 5092, 5093} and min(spread.values()) > 120


def test_hash_of_from_and_ruri_user_use_their_own_keys() -> None:
    for alg in ("hash-from", "hash-ruri"):
        snap = snap_with(alg, gw(1, 5091), gw(2, 5092), gw(3, 5093), gw(4, 5094))
        chosen = {
            user: select(snap, 1, None, {alg: user}.get)[0].port
            for user in ("alice", "bob", "carol", "dave", "erin", "frank")
        }
        again = {user: select(snap, 1, None, {alg: user}.get)[0].port for user in chosen}
        assert chosen == again and len(set(chosen.values())) > 1


def test_hash_walks_to_the_next_usable_gateway() -> None:
    snap = snap_with("hash-callid", gw(1, 5091), gw(2, 5092), gw(3, 5093))
    key = {"hash-callid": "x"}.get
    home = select(snap, 1, None, key)[0].port
    order = [t.port for t in select(snap, 1, None, key)]
    moved = select(snap, 1, lambda t: t.port != home, key)
    assert [t.port for t in moved] == order[1:]


def test_priority_takes_the_first_usable_by_priority() -> None:
    snap = snap_with("8", gw(1, 5091, priority=5), gw(2, 5092, priority=9), gw(3, 5093))
    assert picks(snap, 10) == Counter({5092: 10})
    assert [t.port for t in select(snap, 1)] == [5092, 5091, 5093]
    assert picks(snap, 3, usable=lambda t: t.port != 5092) == Counter({5091: 3})


def test_random_is_roughly_uniform() -> None:
    snap = snap_with("random", gw(1, 5091), gw(2, 5092), gw(3, 5093))
    snap.rr.rng.seed(7)
    counts = picks(snap, 3000)
    assert set(counts) == {5091, 5092, 5093}
    assert all(800 < n < 1200 for n in counts.values())


def test_every_algorithm_says_empty_when_nothing_is_usable() -> None:
    for alg in ("round-robin", "hash-callid", "random", "priority", "weighted"):
        snap = snap_with(alg, gw(1, 5091, attrs="weight=1"), gw(2, 5092, flags=4))
        assert select(snap, 1, lambda t: False, {alg: "k"}.get) == ()
