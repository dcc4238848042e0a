"""Revision 0002 (pks_set.ruri_host, algorithm NULL-able) on every engine: a 0001 table is
read as 'keep' before the upgrade, keeps its rows through it, and refuses a write it cannot
hold with the command to run; the downgrade gives 0001 back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine, inspect

from dbs import execute, query
from pks.db import ensure_schema, load_tables, make_engine, migrate
from pks.provision import tables
from pks.provision.errors import Invalid
from pks.route.rows import SetRow


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def columns(engine: Engine) -> list[tuple[str, str, bool]]:
    """pks_set's columns: name, type, NULL-able."""
    with engine.connect() as conn:
        found = inspect(conn).get_columns("pks_set")
    return [(c["name"], str(c["type"]), c["nullable"]) for c in found]


def at_0001(engine: Engine, db_url: str) -> None:
    ensure_schema(engine)
    migrate.upgrade(engine, "0001")
    execute(
        db_url,
        "INSERT INTO dispatcher (id, setid, destination) VALUES (1, 7, 'sip:192.0.2.1:5070')",
        "INSERT INTO dispatcher (id, setid, destination) VALUES (2, 8, 'sip:192.0.2.2')",
        "INSERT INTO pks_set (setid, algorithm) VALUES (7, 'priority')",
    )


def test_a_0001_table_reads_as_keep_and_refuses_gateway(engine: Engine, db_url: str) -> None:
    at_0001(engine, db_url)
    assert migrate.current(engine) == "0001"
    assert load_tables(engine).sets == (SetRow(7, "priority", "keep"),)
    with pytest.raises(Invalid) as refused:
        tables.put_set(engine, 8, ruri_host="gateway")
    assert refused.value.problems == (
        "pks_set has no ruri_host column yet (revision 0001): run pks db upgrade",
    )
    tables.put_set(engine, 8, "random")  # what 0001 holds is still written
    assert load_tables(engine).sets == (SetRow(7, "priority"), SetRow(8, "random"))
    assert migrate.current(engine) == "0001"  # nothing upgraded behind the operator's back


def test_upgrade_keeps_the_rows_and_then_holds_gateway(engine: Engine, db_url: str) -> None:
    at_0001(engine, db_url)
    assert migrate.upgrade(engine) == ("0001", migrate.head())
    assert query(db_url, "SELECT setid, algorithm, ruri_host FROM pks_set") == [
        (7, "priority", "keep")
    ]
    tables.put_set(engine, 8, ruri_host="gateway")  # no algorithm: NULL, the default
    tables.put_set(engine, 7, ruri_host="gateway")  # the algorithm stays
    both = (SetRow(7, "priority", "gateway"), SetRow(8, None, "gateway"))
    assert load_tables(engine).sets == both
    tables.put_set(engine, 8, ruri_host="keep")  # back to every default: no row left
    assert [s["setid"] for s in tables.list_sets(engine) if s["ruri_host"] == "gateway"] == [7]
    assert load_tables(engine).sets == (SetRow(7, "priority", "gateway"),)


def test_downgrade_gives_0001_back(engine: Engine, db_url: str) -> None:
    at_0001(engine, db_url)
    before = columns(engine)
    assert [name for name, _, _ in before] == ["setid", "algorithm"]
    migrate.upgrade(engine)
    execute(db_url, "INSERT INTO pks_set (setid, ruri_host) VALUES (8, 'gateway')")
    config = migrate._config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    assert migrate.current(engine) == "0001"
    assert columns(engine) == before
    assert load_tables(engine).sets == (SetRow(7, "priority", "keep"),)
