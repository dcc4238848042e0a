"""pks db init / upgrade / status and the start-up set-up, on every engine: our tables are
migrated, Kamailio's are created when missing and never altered when present."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, inspect

from dbs import execute, query
from pks.db import ensure_schema, load_tables, make_engine, migrate
from pks.db.watch import WATCHED, triggered_tables

KAMAILIO = ("version", "address", "dialplan", "dispatcher")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def structure(engine: Engine, tables: tuple[str, ...] = KAMAILIO) -> dict[str, object]:
    """Columns (name, type, NULL-ability, default), primary key, indexes and uniques."""
    with engine.connect() as conn:
        found = inspect(conn)
        return {
            name: (
                [
                    (c["name"], str(c["type"]), c["nullable"], str(c.get("default")))
                    for c in found.get_columns(name)
                ],
                found.get_pk_constraint(name)["constrained_columns"],
                sorted(str(index) for index in found.get_indexes(name)),
                sorted(str(unique) for unique in found.get_unique_constraints(name)),
            )
            for name in tables
        }


def pks(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
    env["PKS_DB_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "pks", "db", *args], env=env, capture_output=True, text=True
    )


def test_init_creates_everything_once(engine: Engine, db_url: str) -> None:
    first = migrate.init(engine)
    assert "created Kamailio tables: address, dialplan, dispatcher, version" in first
    assert f"pks tables migrated from revision none to {migrate.head()}" in first
    again = migrate.init(engine)
    assert not any(line.startswith(("created", "pks tables")) for line in again)
    versions = query(db_url, "SELECT table_name, table_version FROM version ORDER BY id")
    assert versions == [
        ("version", 1),
        ("address", 6),
        ("dialplan", 2),
        ("dispatcher", 4),
        ("acc", 5),  # Kamailio's acc, for call records (0004)
    ]
    state = migrate.state(engine)
    assert {"pks_peer", "pks_set", "pks_alembic_version"} <= set(state.tables)
    assert state.revision == state.head == migrate.head()
    if engine.url.get_backend_name() == "postgresql":
        assert set(state.triggers) == set(WATCHED)
    else:
        assert state.triggers == ()


def test_upgrade_on_a_kamailio_database_leaves_its_tables_alone(
    engine: Engine, db_url: str
) -> None:
    ensure_schema(engine)  # what Kamailio's own scripts create, with rows
    execute(
        db_url,
        "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '10.0.0.1', 32, 0, 'a')",
        "INSERT INTO dispatcher (setid, destination) VALUES (7, 'sip:10.0.0.2')",
    )
    before = structure(engine)
    assert migrate.upgrade(engine) == (None, migrate.head())
    assert migrate.upgrade(engine) == (migrate.head(), migrate.head())
    assert structure(engine) == before
    rows = load_tables(engine)
    assert (len(rows.address), len(rows.dispatcher), rows.peers) == (1, 1, ())


def test_start_up_prepares_an_empty_database_fully(engine: Engine) -> None:
    migrate.prepare(engine)
    assert migrate.current(engine) == migrate.head()
    if engine.url.get_backend_name() == "postgresql":
        assert triggered_tables(engine) == set(WATCHED)


def test_start_up_on_an_existing_database_adds_only_our_tables(engine: Engine) -> None:
    ensure_schema(engine)
    before = structure(engine)
    migrate.prepare(engine)
    assert structure(engine) == before
    assert migrate.current(engine) == migrate.head()
    if engine.url.get_backend_name() == "postgresql":
        assert triggered_tables(engine) == set()  # only pks db init / upgrade install them


def test_adopts_pks_tables_made_without_migrations(engine: Engine) -> None:
    from pks.db.own import own_metadata

    ensure_schema(engine)
    own_metadata.create_all(engine)
    before = structure(engine, ("pks_peer", "pks_set"))
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    assert structure(engine, ("pks_peer", "pks_set")) == before


def test_migrated_tables_match_the_declared_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pks.db.own import own_metadata

    migrated = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    declared = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    migrate.upgrade(migrated)
    own_metadata.create_all(declared)
    tables = ("pks_peer", "pks_set", "pks_cdr")
    assert structure(migrated, tables) == structure(declared, tables)


def test_cli_init_upgrade_status(db_url: str) -> None:
    done = pks(db_url, "init")
    assert done.returncode == 0, done.stderr
    assert "created Kamailio tables" in done.stdout
    done = pks(db_url, "upgrade")
    assert done.returncode == 0, done.stderr
    assert f"already at revision {migrate.head()}" in done.stdout
    done = pks(db_url, "status")
    assert done.returncode == 0, done.stderr
    assert "address 6, dialplan 2, dispatcher 4" in done.stdout
    assert f"revision {migrate.head()}" in done.stdout
    wanted = "LISTEN/NOTIFY" if db_url.startswith("postgresql") else "periodic check"
    assert wanted in done.stdout


def test_cli_reports_an_unreachable_database() -> None:
    done = pks("postgresql://postgres@127.0.0.1:1/pks", "status")
    assert done.returncode == 1
    assert "pks: database unreachable (postgresql+psycopg://postgres@127.0.0.1:1/pks)" in (
        done.stderr
    )
