"""load_tables(): ORDER BY id, NULL handling, type errors, old dispatcher tables, and our own
pks_peer/pks_set tables (absent in a pure Kamailio database) — on every engine where the
behaviour is not SQLite's alone."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from dbs import execute
from pks.db import LoadError, ensure_schema, load_tables, make_engine
from pks.db.migrate import upgrade
from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, PeerRow, SetRow


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pks.db'}")
    ensure_schema(engine)
    yield engine
    engine.dispose()


def run(engine: Engine, *statements: str) -> None:
    execute(engine.url.render_as_string(hide_password=False), *statements)


def test_rows_come_back_typed_and_ordered_by_id(engine: Engine) -> None:
    run(
        engine,
        "INSERT INTO address VALUES (9, 2, '10.0.0.9', 32, 0, NULL)",
        "INSERT INTO address (id, grp, ip_addr, tag) VALUES (3, 1, '10.0.0.3', 'pbx')",
        "INSERT INTO dialplan VALUES (5, 1, 1, 1, '^33', 0, '', '', '23')",
        "INSERT INTO dispatcher (id, setid, destination) VALUES (7, 23, 'sip:10.0.0.7')",
    )
    rows = load_tables(engine)
    assert rows.address == (
        AddressRow(3, 1, "10.0.0.3", 32, 0, "pbx"),  # column defaults
        AddressRow(9, 2, "10.0.0.9", 32, 0, None),
    )
    assert rows.dialplan == (DialplanRow(5, 1, 1, 1, "^33", 0, "", "", "23"),)
    assert rows.dispatcher == (DispatcherRow(7, 23, "sip:10.0.0.7", 0, 0, "", ""),)


def test_values_of_the_wrong_type_are_reported_per_row(sqlite_engine: Engine) -> None:
    # SQLite stores what it is given; Kamailio rejects such rows ("invalid record")
    engine = sqlite_engine
    run(
        engine,
        "INSERT INTO address (id, grp, ip_addr) VALUES (1, 'abc', '10.0.0.1')",
        "INSERT INTO address (id, grp, ip_addr) VALUES (2, '7', '10.0.0.2')",  # '7' becomes 7
        "INSERT INTO dialplan VALUES (4, 1, 1, 1, '^1', 'x', '', '', '1')",
    )
    with pytest.raises(LoadError) as err:
        load_tables(engine)
    assert err.value.problems == (
        "address id 1: grp is 'abc', not an integer",
        "dialplan id 4: match_len is 'x', not an integer",
    )


def test_nulls_in_not_null_columns_are_reported(tmp_path: Path) -> None:
    # a hand-made table without NOT NULL constraints, as some installations have
    path = tmp_path / "loose.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE version (id INTEGER PRIMARY KEY, table_name TEXT, table_version INT);
            INSERT INTO version (table_name, table_version)
                VALUES ('address', 6), ('dialplan', 2), ('dispatcher', 4);
            CREATE TABLE address (id INTEGER PRIMARY KEY, grp INT, ip_addr TEXT, mask INT,
                port INT, tag TEXT);
            CREATE TABLE dialplan (id INTEGER PRIMARY KEY, dpid INT, pr INT, match_op INT,
                match_exp TEXT, match_len INT, subst_exp TEXT, repl_exp TEXT, attrs TEXT);
            CREATE TABLE dispatcher (id INTEGER PRIMARY KEY, setid INT, destination TEXT,
                flags INT, priority INT, attrs TEXT, description TEXT);
            INSERT INTO address VALUES (1, 1, NULL, 32, 0, NULL);
            INSERT INTO dialplan VALUES (2, 1, 1, 1, '^1', 0, NULL, '', '1');
            INSERT INTO dispatcher VALUES (3, 1, 'sip:10.0.0.1', 0, 0, NULL, NULL);
            """
        )
    engine = make_engine(f"sqlite:///{path}")
    with pytest.raises(LoadError) as err:
        load_tables(engine)
    assert err.value.problems == (
        "address id 1: ip_addr is NULL",
        "dialplan id 2: subst_exp is NULL",
    )
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM address")
        conn.execute("DELETE FROM dialplan")
    # NULL dispatcher attrs/description are accepted, as by Kamailio
    assert load_tables(engine).dispatcher == (DispatcherRow(3, 1, "sip:10.0.0.1", 0, 0, "", ""),)
    engine.dispose()


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        (1, DispatcherRow(1, 5, "sip:10.0.0.1", 0, 0, "", "gw")),
        (2, DispatcherRow(1, 5, "sip:10.0.0.1", 4, 0, "", "gw")),
        (3, DispatcherRow(1, 5, "sip:10.0.0.1", 4, 9, "", "gw")),
        (4, DispatcherRow(1, 5, "sip:10.0.0.1", 4, 9, "weight=5", "gw")),
    ],
)
def test_old_dispatcher_versions_read_only_their_columns(
    engine: Engine, version: int, expected: DispatcherRow
) -> None:
    run(
        engine,
        f"UPDATE version SET table_version = {version} WHERE table_name = 'dispatcher'",
        "INSERT INTO dispatcher VALUES (1, 5, 'sip:10.0.0.1', 4, 9, 'weight=5', 'gw')",
    )
    assert load_tables(engine).dispatcher == (expected,)


def test_version_one_dispatcher_table_without_the_newer_columns(engine: Engine) -> None:
    run(
        engine,
        "DROP TABLE dispatcher",
        "CREATE TABLE dispatcher (id INTEGER PRIMARY KEY, setid INT, destination VARCHAR(192))",
        "INSERT INTO dispatcher VALUES (1, 5, 'sip:10.0.0.1')",
        "UPDATE version SET table_version = 1 WHERE table_name = 'dispatcher'",
    )
    assert load_tables(engine).dispatcher == (DispatcherRow(1, 5, "sip:10.0.0.1", 0, 0, "", ""),)


def test_a_pure_kamailio_database_has_no_peers_and_no_sets(engine: Engine) -> None:
    rows = load_tables(engine)
    assert (rows.peers, rows.sets) == ((), ())


def test_peers_and_sets_are_read_in_key_order(engine: Engine) -> None:
    upgrade(engine)
    run(
        engine,
        "INSERT INTO pks_peer (id, kind, name, tag, setid, socket, max_calls, description)"
        " VALUES (4, 'provider', 'ovh', 'ovh', 21, 'public', 30, 'trunk')",
        "INSERT INTO pks_peer (id, kind, name, tag, setid) VALUES (2, 'customer', 'acme', 'a', 23)",
        "INSERT INTO pks_set (setid, algorithm) VALUES (23, 'round-robin'), (21, 'hash')",
    )
    rows = load_tables(engine)
    assert rows.peers == (
        PeerRow(2, "customer", "acme", "a", 23, None, None, ""),
        PeerRow(4, "provider", "ovh", "ovh", 21, "public", 30, "trunk"),
    )
    assert rows.sets == (SetRow(21, "hash"), SetRow(23, "round-robin"))


def test_bad_peer_values_are_reported(sqlite_engine: Engine) -> None:
    upgrade(sqlite_engine)
    run(
        sqlite_engine,
        "INSERT INTO pks_peer (id, kind, name, tag, setid) VALUES (1, 'customer', 'a', 'a', 'x')",
        "INSERT INTO pks_peer (id, kind, name, tag, setid) VALUES (2, 'c', 'b', 'b', 3)",
        "UPDATE pks_peer SET max_calls = 'lots' WHERE id = 2",
    )
    with pytest.raises(LoadError) as err:
        load_tables(sqlite_engine)
    assert err.value.problems == (
        "pks_peer id 1: setid is 'x', not an integer",
        "pks_peer id 2: max_calls is 'lots', not an integer",
    )
