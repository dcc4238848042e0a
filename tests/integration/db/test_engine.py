"""make_engine / ensure_schema / check_versions on real SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from pks.db import SchemaVersionError, check_versions, ensure_schema, make_engine


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pks.db'}")
    yield engine
    engine.dispose()


def sql(engine: Engine, statement: str) -> list[tuple[object, ...]]:
    path = engine.url.database
    assert path is not None
    with sqlite3.connect(path) as conn:
        return conn.execute(statement).fetchall()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgresql://u:p@db.example/pks", "postgresql+psycopg"),
        ("postgres://u@db.example/pks", "postgresql+psycopg"),
        ("mysql://u:p@db.example/pks", "mysql+pymysql"),
        ("mariadb://u:p@db.example/pks", "mariadb+pymysql"),
        ("postgresql+psycopg://u@db.example/pks", "postgresql+psycopg"),
        ("sqlite:///./pks.db", "sqlite"),
    ],
)
def test_urls_map_to_the_expected_drivers(url: str, driver: str) -> None:
    engine = make_engine(url)  # no connection is opened
    assert engine.url.drivername == driver
    engine.dispose()


def test_ensure_schema_creates_tables_and_version_rows_once(engine: Engine) -> None:
    ensure_schema(engine)
    ensure_schema(engine)
    assert sql(engine, "SELECT table_name, table_version FROM version ORDER BY id") == [
        ("version", 1),
        ("address", 6),
        ("dialplan", 2),
        ("dispatcher", 4),
    ]
    assert check_versions(engine) == {"address": 6, "dialplan": 2, "dispatcher": 4}


def test_ensure_schema_never_alters_an_existing_table(engine: Engine) -> None:
    sql(engine, "CREATE TABLE dispatcher (id INTEGER PRIMARY KEY, setid INTEGER, destination TEXT)")
    ensure_schema(engine)
    assert [row[1] for row in sql(engine, "PRAGMA table_info(dispatcher)")] == [
        "id",
        "setid",
        "destination",
    ]
    assert sql(engine, "SELECT table_version FROM version WHERE table_name = 'dispatcher'") == [
        (4,)
    ]


def test_missing_version_table_is_reported(engine: Engine) -> None:
    with pytest.raises(SchemaVersionError, match="table version is missing"):
        check_versions(engine)


def test_every_incompatible_table_is_reported(engine: Engine) -> None:
    ensure_schema(engine)
    sql(engine, "UPDATE version SET table_version = 5 WHERE table_name = 'address'")
    sql(engine, "DELETE FROM version WHERE table_name = 'dialplan'")
    sql(engine, "DROP TABLE dispatcher")
    with pytest.raises(SchemaVersionError) as err:
        check_versions(engine)
    message = str(err.value)
    assert "table address has version 5, expected 6" in message
    assert "table dialplan has no row in table version (expected table_version 2)" in message
    assert "table dispatcher is missing" in message


@pytest.mark.parametrize("version", [1, 2, 3, 4])
def test_dispatcher_versions_one_to_four_are_accepted(engine: Engine, version: int) -> None:
    ensure_schema(engine)
    sql(engine, f"UPDATE version SET table_version = {version} WHERE table_name = 'dispatcher'")
    assert check_versions(engine)["dispatcher"] == version
    sql(engine, "UPDATE version SET table_version = 5 WHERE table_name = 'dispatcher'")
    with pytest.raises(SchemaVersionError, match="expected 1/2/3/4"):
        check_versions(engine)
