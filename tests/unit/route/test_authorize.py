"""authorize(): Kamailio permissions allow_source_address_group, semantics §1.2, §1.3, §1.6."""

from __future__ import annotations

import pytest

from pks.route import AddressRow, Peer, SnapshotError, authorize
from pks.route.snapshot import Snapshot


def grp(snapshot: Snapshot, ip: str, port: int = 5060) -> int | None:
    peer = authorize(snapshot, ip, port)
    return None if peer is None else peer.grp


def test_exact_match_returns_group_and_tag(build) -> None:
    snap = build((AddressRow(1, 2, "8.1.2.2", 32, 5060, "20"),))
    assert authorize(snap, "8.1.2.2", 5060) == Peer(2, "20")
    assert authorize(snap, "8.1.2.3", 5060) is None


def test_exact_beats_any_subnet_whatever_the_group(build) -> None:
    snap = build(
        (
            AddressRow(1, 1, "10.0.0.0", 8, 0, "net"),
            AddressRow(2, 9, "10.1.2.3", 32, 0, "host"),
        )
    )
    assert authorize(snap, "10.1.2.3", 5060) == Peer(9, "host")
    assert authorize(snap, "10.1.2.4", 5060) == Peer(1, "net")


def test_duplicate_exact_ip_last_loaded_wins(build) -> None:
    # verified: 127.0.0.5 in grp 2 (id 8) and grp 7 (id 9) -> 7
    snap = build(
        (AddressRow(8, 2, "127.0.0.5", 32, 0, None), AddressRow(9, 7, "127.0.0.5", 32, 0, None))
    )
    assert grp(snap, "127.0.0.5") == 7


def test_port_zero_and_port_specific_rows_decided_by_load_order(build) -> None:
    # verified: 127.0.0.1 port 0 grp 1 (id 1) and port 5090 grp 2 (id 2)
    snap = build(
        (AddressRow(1, 1, "127.0.0.1", 32, 0, "A"), AddressRow(2, 2, "127.0.0.1", 32, 5090, "B"))
    )
    assert authorize(snap, "127.0.0.1", 5090) == Peer(2, "B")
    assert authorize(snap, "127.0.0.1", 5091) == Peer(1, "A")
    # the other load order: the later port-0 row is found first, even from 5090
    snap = build(
        (AddressRow(1, 2, "127.0.0.1", 32, 5090, "B"), AddressRow(2, 1, "127.0.0.1", 32, 0, "A"))
    )
    assert authorize(snap, "127.0.0.1", 5090) == Peer(1, "A")


def test_port_specific_row_never_matches_another_port(build) -> None:
    snap = build((AddressRow(1, 1, "10.1.1.1", 32, 5060, "456"),))
    assert grp(snap, "10.1.1.1", 5060) == 1
    assert grp(snap, "10.1.1.1", 5061) is None
    snap = build((AddressRow(1, 1, "10.1.0.0", 16, 5060, None),))
    assert grp(snap, "10.1.9.9", 5060) == 1
    assert grp(snap, "10.1.9.9", 5080) is None


def test_mask_zero_is_a_host_route_not_any(build) -> None:
    # verified: 127.0.0.3/0 appears in the exact-address dump
    snap = build((AddressRow(1, 1, "127.0.0.3", 0, 0, None),))
    assert grp(snap, "127.0.0.3") == 1
    assert grp(snap, "127.0.0.4") is None
    assert [e.ip for e in snap.address_dump()] == ["127.0.0.3"]
    assert snap.address_dump()[0].mask == 32
    assert snap.subnet_dump() == ()


def test_subnets_first_match_by_group_not_longest_prefix(build) -> None:
    # verified: 127.0.1.9:5095 matched 127.0.0.0/8 grp 3 instead of 127.0.1.0/24:5095 grp 9
    snap = build(
        (
            AddressRow(1, 9, "127.0.1.0", 24, 5095, "narrow"),
            AddressRow(2, 3, "127.0.0.0", 8, 0, "wide"),
        )
    )
    assert authorize(snap, "127.0.1.9", 5095) == Peer(3, "wide")
    assert [e.grp for e in snap.subnet_dump()] == [3, 9]


def test_subnets_of_one_group_keep_load_order(build) -> None:
    snap = build(
        (
            AddressRow(1, 4, "10.0.0.0", 8, 0, "first"),
            AddressRow(2, 4, "10.1.0.0", 16, 0, "second"),
            AddressRow(3, 2, "192.168.0.0", 16, 0, "other"),
        )
    )
    assert authorize(snap, "10.1.1.1", 5060) == Peer(4, "first")
    assert [e.tag for e in snap.subnet_dump()] == ["other", "first", "second"]


def test_unaligned_subnet_address_is_kept_and_still_matches(build) -> None:
    # verified: 127.0.2.7/30 matched .4 (same /30) but not .8
    snap = build((AddressRow(1, 1, "127.0.2.7", 30, 0, None),))
    assert grp(snap, "127.0.2.4") == 1
    assert grp(snap, "127.0.2.8") is None
    assert snap.subnet_dump()[0].ip == "127.0.2.7"


def test_ipv6_exact_and_subnet_rows(build) -> None:
    snap = build(
        (
            AddressRow(1, 1, "[::1]", 128, 0, "loop"),
            AddressRow(2, 2, "2001:db8::", 32, 0, "doc"),
            AddressRow(3, 3, "2001:DB8:0:0::7", 0, 0, "host"),
        )
    )
    assert authorize(snap, "::1", 5060) == Peer(1, "loop")
    assert authorize(snap, "0:0::1", 5060) == Peer(1, "loop")  # another spelling
    assert authorize(snap, "[::1]", 5060) == Peer(1, "loop")
    assert authorize(snap, "2001:db8:ffff::1", 5060) == Peer(2, "doc")
    assert authorize(snap, "2001:db8::7", 5060) == Peer(3, "host")  # mask 0 = /128
    assert authorize(snap, "2001:db9::1", 5060) is None


def test_families_never_mix(build) -> None:
    snap = build(
        (AddressRow(1, 1, "10.1.1.1", 32, 0, None), AddressRow(2, 2, "0.0.0.0", 1, 0, None))
    )
    assert grp(snap, "::ffff:10.1.1.1") is None
    assert grp(snap, "::1") is None
    assert grp(snap, "10.1.1.1") == 1
    assert grp(snap, "127.0.0.1") == 2


def test_hostname_rows_are_kept_but_never_match(build) -> None:
    snap = build((AddressRow(1, 1, "pbx.example.com", 32, 0, "pbx"),))
    assert [e.ip for e in snap.domain_dump()] == ["pbx.example.com"]
    assert authorize(snap, "pbx.example.com", 5060) is None


def test_null_tag_and_empty_tag_differ(build) -> None:
    snap = build(
        (AddressRow(1, 1, "10.0.0.1", 32, 0, None), AddressRow(2, 1, "10.0.0.2", 32, 0, ""))
    )
    assert authorize(snap, "10.0.0.1", 1) == Peer(1, None)
    assert authorize(snap, "10.0.0.2", 1) == Peer(1, "")


def test_unknown_and_malformed_sources(build) -> None:
    snap = build((AddressRow(1, 1, "10.0.0.0", 24, 0, None),))
    assert authorize(snap, "10.0.1.1", 5060) is None
    assert authorize(snap, "not-an-ip", 5060) is None
    assert authorize(snap, "", 5060) is None


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (AddressRow(7, 0, "10.0.0.1", 32, 0, None), "address id 7: grp 0 must be greater than 0"),
        (AddressRow(7, -3, "10.0.0.1", 32, 0, None), "address id 7: grp -3 must be greater"),
        (AddressRow(7, 1, "10.0.0.1", 33, 0, None), "address id 7: mask 33 is not in 0..32"),
        (AddressRow(7, 1, "10.0.0.1", -1, 0, None), "address id 7: mask -1 is not in 0..32"),
        (AddressRow(7, 1, "::1", 129, 0, None), "address id 7: mask 129 is not in 0..128"),
        (AddressRow(7, 1, "10.0.0.1", 32, 70000, None), "address id 7: port 70000 is not in"),
    ],
)
def test_one_invalid_row_rejects_the_whole_table(build, row: AddressRow, reason: str) -> None:
    good = AddressRow(1, 1, "10.1.1.1", 32, 0, None)
    with pytest.raises(SnapshotError) as err:
        build((good, row))
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(reason)


def test_every_reason_of_every_bad_row_is_reported(build) -> None:
    with pytest.raises(SnapshotError) as err:
        build(
            (
                AddressRow(3, 0, "10.0.0.1", 33, 0, None),
                AddressRow(4, 1, "10.0.0.2", 32, 0, None),
                AddressRow(5, -1, "::1", 200, 0, None),
            )
        )
    assert [p.split(":")[0] for p in err.value.problems] == [
        "address id 3",
        "address id 3",
        "address id 5",
        "address id 5",
    ]
