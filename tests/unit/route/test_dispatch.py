"""select() and dispatcher loading: Kamailio dispatcher §3.2–§3.7 (alg 4, flags=2)."""

from __future__ import annotations

import pytest

from pks.net import Proto
from pks.route import DispatcherRow, SnapshotError, Target, select
from pks.route.dispatch import parse_attrs


def gw(id: int, port: int, *, setid: int = 1, flags: int = 0, priority: int = 0, attrs: str = ""):
    return DispatcherRow(id, setid, f"sip:127.0.0.1:{port}", flags, priority, attrs, "")


def ports(targets: tuple[Target, ...] | None) -> list[int] | None:
    return None if targets is None else [t.port for t in targets]


def test_set_order_priority_descending_ties_in_reverse_load_order(build) -> None:
    # verified: rows (p0 id1, p10 id2, p0 id3, p5 id4) -> order id2, id4, id3, id1
    snap = build(
        dispatcher=(
            gw(1, 5091, priority=0),
            gw(2, 5092, priority=10),
            gw(3, 5093, priority=0),
            gw(4, 5094, priority=5),
        )
    )
    assert [d.id for d in snap.dispatcher_sets()[0].destinations] == [2, 4, 3, 1]


def test_round_robin_skips_a_disabled_entry_without_double_serving(build) -> None:
    # verified: order [5092, 5094 (disabled), 5093, 5091]; five calls -> 5092 5093 5091 5092 5093
    snap = build(
        dispatcher=(
            gw(1, 5091, priority=1),
            gw(2, 5092, priority=10),
            gw(3, 5093, priority=5),
            gw(4, 5094, priority=8, flags=4),
        )
    )
    firsts = [select(snap, 1)[0].port for _ in range(5)]
    assert firsts == [5092, 5093, 5091, 5092, 5093]


def test_failover_order_is_the_rest_of_the_set_wrapping_without_unusable(build) -> None:
    snap = build(
        dispatcher=(
            gw(1, 5091, priority=4),
            gw(2, 5092, priority=3, flags=1),  # inactive
            gw(3, 5093, priority=2),
            gw(4, 5094, priority=1),
        )
    )
    assert ports(select(snap, 1)) == [5091, 5093, 5094]
    assert ports(select(snap, 1)) == [5093, 5094, 5091]
    assert ports(select(snap, 1)) == [5094, 5091, 5093]
    assert ports(select(snap, 1)) == [5091, 5093, 5094]


def test_trying_and_probing_entries_stay_selectable(build) -> None:
    snap = build(dispatcher=(gw(1, 5091, flags=2), gw(2, 5092, flags=8)))
    assert sorted(ports(select(snap, 1))) == [5091, 5092]


def test_unknown_set_gives_none_and_all_unusable_gives_empty(build) -> None:
    snap = build(dispatcher=(gw(1, 5091, flags=1), gw(2, 5092, flags=4), gw(3, 5093, flags=5)))
    assert select(snap, 1) == ()
    assert select(snap, 2) is None


def test_counters_are_per_set_and_reset_by_a_new_snapshot(build) -> None:
    rows = (gw(1, 5091, setid=1), gw(2, 5092, setid=1), gw(3, 6001, setid=2), gw(4, 6002, setid=2))
    snap = build(dispatcher=rows)
    assert ports(select(snap, 1)) == [5092, 5091]  # reverse load order for equal priorities
    assert ports(select(snap, 2)) == [6002, 6001]
    assert ports(select(snap, 1)) == [5091, 5092]
    assert ports(select(build(dispatcher=rows), 1)) == [5092, 5091]


def test_runtime_state_hook_excludes_more(build) -> None:
    snap = build(
        dispatcher=(gw(1, 5091, priority=3), gw(2, 5092, priority=2), gw(3, 5093, priority=1))
    )
    down = {5092}
    usable = lambda t: t.port not in down  # noqa: E731
    assert ports(select(snap, 1, usable)) == [5091, 5093]
    assert ports(select(snap, 1, usable)) == [5093, 5091]  # 5092 is skipped like a disabled one
    down.update({5091, 5093})
    assert select(snap, 1, usable) == ()  # a failed selection leaves the counter alone
    down.clear()
    assert ports(select(snap, 1, usable)) == [5091, 5092, 5093]  # last chose 5093 (the end)


def test_hook_never_revives_flagged_entries(build) -> None:
    snap = build(dispatcher=(gw(1, 5091, flags=4), gw(2, 5092)))
    assert ports(select(snap, 1, lambda t: True)) == [5092]


# -- destinations --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "uri", "host", "port", "proto"),
    [
        ("sip:1.1.1.1:5060", "sip:1.1.1.1:5060", "1.1.1.1", 5060, Proto.UDP),
        ("sip:1.1.1.1", "sip:1.1.1.1", "1.1.1.1", 5060, Proto.UDP),
        ("127.0.0.1:6010", "sip:127.0.0.1:6010", "127.0.0.1", 6010, Proto.UDP),  # fixed up
        ("sip:1.1.1.1;transport=TCP", "sip:1.1.1.1;transport=TCP", "1.1.1.1", 5060, Proto.TCP),
        ("sip:gw@1.1.1.1:5070;lr", "sip:gw@1.1.1.1:5070;lr", "1.1.1.1", 5070, Proto.UDP),
        ("SIP:[2001:DB8::1]:5080", "SIP:[2001:DB8::1]:5080", "2001:db8::1", 5080, Proto.UDP),
    ],
)
def test_destination_forms(
    build, destination: str, uri: str, host: str, port: int, proto: Proto
) -> None:
    row = DispatcherRow(1, 9, destination, 0, 0, "", "")
    snap = build(dispatcher=(row,))
    assert select(snap, 9) == (Target(uri, host, port, proto, None, 9, ""),)


def test_host_names_are_resolved_at_call_time_srv_without_port(build) -> None:
    rows = (
        DispatcherRow(1, 1, "sip:GW.example.net.", 0, 0, "", ""),
        DispatcherRow(2, 2, "sip:gw.example.net:5070;transport=tcp", 0, 0, "", ""),
    )
    snap = build(dispatcher=rows)
    (srv,) = select(snap, 1)
    (a,) = select(snap, 2)
    assert (srv.host, srv.port, srv.dns) == ("gw.example.net", 5060, "srv")
    assert (a.host, a.port, a.proto, a.dns) == ("gw.example.net", 5070, Proto.TCP, "a")


@pytest.mark.parametrize(
    ("destination", "reason"),
    [
        ("", "destination '' is not a SIP URI"),
        ("sip:", "destination 'sip:' is not a SIP URI"),
        ("abc", "destination 'abc' is not a SIP URI"),
        ("tel:+33123", "destination 'tel:+33123' is not a SIP URI"),
        ("sip:bad_host!:5060", "is not a SIP URI"),
        ("sip:1.1.1.1:99999", "port 99999 is not in 1..65535"),
        ("sip:1.1.1.1:0", "port 0 is not in 1..65535"),
        ("sips:1.1.1.1", "sips needs TLS"),
        ("sip:1.1.1.1;transport=tls", "transport 'tls' is not udp or tcp"),
        ("sip:[::zz]", "is not a SIP URI"),
        ("sip:[1.2.3.4]", "[1.2.3.4] is not an IPv6 address"),
    ],
)
def test_bad_destination_rejects_the_build(build, destination: str, reason: str) -> None:
    rows = (gw(1, 5060), DispatcherRow(5, 1, destination, 0, 0, "", ""))
    with pytest.raises(SnapshotError) as err:
        build(dispatcher=rows)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("dispatcher id 5: ")
    assert reason in err.value.problems[0]


def test_socket_name_from_sockname_or_socketname(build) -> None:
    snap = build(
        dispatcher=(
            gw(1, 5091, setid=1, attrs="socketname=ipbx;cust=celea"),
            gw(2, 5092, setid=2, attrs="SockName=pub;socketname=ipbx"),
            gw(3, 5093, setid=3, attrs="weight=50"),
            gw(4, 5094, setid=4, attrs="sockname=;socketname=ipbx"),
        ),
        sockets={"ipbx", "pub"},
    )
    assert [select(snap, s)[0].socket_name for s in (1, 2, 3, 4)] == ["ipbx", "pub", None, "ipbx"]
    assert select(snap, 1)[0].attrs == "socketname=ipbx;cust=celea"


def test_unknown_socket_name_rejects_the_build_when_sockets_are_known(build) -> None:
    rows = (gw(3, 5093, attrs="socketname=ipbx"),)
    assert select(build(dispatcher=rows), 1)[0].socket_name == "ipbx"  # unchecked
    with pytest.raises(SnapshotError, match=r"dispatcher id 3: socket name 'ipbx' is not ours"):
        build(dispatcher=rows, sockets={"public"})


def test_attrs_parsing() -> None:
    assert parse_attrs("prov=ovh") == (("prov", "ovh"),)
    assert parse_attrs("Weight=50; SOCKNAME=x ;flag;") == (
        ("weight", "50"),
        ("sockname", "x"),
        ("flag", ""),
    )
    assert parse_attrs("") == ()


def test_every_bad_row_is_named(build) -> None:
    rows = (DispatcherRow(3, 1, "x", 0, 0, "", ""), DispatcherRow(4, 1, "sips:a", 0, 0, "", ""))
    with pytest.raises(SnapshotError) as err:
        build(dispatcher=rows)
    assert [p.split(":")[0] for p in err.value.problems] == ["dispatcher id 3", "dispatcher id 4"]
