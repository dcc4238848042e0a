"""build_snapshot(): all-or-nothing validation naming every bad row, summary, dumps."""

from __future__ import annotations

import pytest

from pks.route import (
    AddressRow,
    DialplanRow,
    DispatcherRow,
    SnapshotError,
    TableRows,
    build_snapshot,
)


def test_a_bad_rule_fails_the_build_and_names_the_row(seed_rows: TableRows) -> None:
    bad = DialplanRow(42, 2, 1, 1, "(unclosed", 0, "", "", "21")
    rows = TableRows(seed_rows.address, (*seed_rows.dialplan, bad), seed_rows.dispatcher)
    with pytest.raises(SnapshotError) as err:
        build_snapshot(rows)
    assert (
        str(err.value)
        == "dialplan id 42: match_exp '(unclosed' does not compile: missing ) at position 9"
    )


def test_every_bad_row_of_every_table_is_reported_at_once() -> None:
    rows = TableRows(
        address=(
            AddressRow(1, 0, "10.0.0.1", 32, 0, None),
            AddressRow(2, 1, "10.0.0.2", 32, 0, None),
        ),
        dialplan=(
            DialplanRow(1, 1, 1, 1, "+1", 0, "", "", "1"),
            DialplanRow(2, 1, 1, 9, "1", 0, "", "", "1"),
        ),
        dispatcher=(DispatcherRow(1, 1, "sips:x", 0, 0, "", ""),),
    )
    with pytest.raises(SnapshotError) as err:
        build_snapshot(rows)
    assert [p.split(":")[0] for p in err.value.problems] == [
        "address id 1",
        "dialplan id 1",
        "dialplan id 2",
        "dispatcher id 1",
    ]


def test_summary_and_dumps(seed_rows: TableRows) -> None:
    rows = TableRows(
        (*seed_rows.address, AddressRow(3, 2, "192.0.2.0", 24, 0, None)),
        seed_rows.dialplan,
        seed_rows.dispatcher,
    )
    snap = build_snapshot(rows, now=1234.5)
    summary = snap.summary()
    assert summary.built_at == 1234.5
    assert (summary.addresses, summary.subnets, summary.domains) == (2, 1, 0)
    assert (summary.dpids, summary.rules, summary.sets, summary.destinations) == (2, 3, 2, 2)
    assert str(summary) == (
        "2 addresses, 1 subnets, 0 domains; 3 dialplan rules in 2 dpids; 2 gateways in 2 sets"
    )
    assert [s.setid for s in snap.dispatcher_sets()] == [21, 23]
    assert snap.dispatcher_sets()[0].destinations[0].description == "celea"
    assert [r.id for r in snap.dialplan_dump(2)] == [2, 3]
    assert [e.tag for e in snap.address_dump()] == ["456", "20"]
    assert build_snapshot(TableRows()).summary().built_at is None


def test_empty_tables_build_an_empty_snapshot() -> None:
    snap = build_snapshot(TableRows())
    assert snap.dialplan_dpids() == ()
    assert snap.dispatcher_sets() == ()
