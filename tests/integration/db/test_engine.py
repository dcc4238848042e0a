"""make_engine / ensure_schema / check_versions on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, inspect

from dbs import execute, query
from pks.db import SchemaVersionError, check_versions, ensure_schema, make_engine
from pks.db.engine import is_unreachable


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def sql(engine: Engine, *statements: str) -> None:
    execute(engine.url.render_as_string(hide_password=False), *statements)


def rows(engine: Engine, statement: str) -> list[tuple[object, ...]]:
    return query(engine.url.render_as_string(hide_password=False), statement)


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


def test_unreachable_server_fails_fast_and_is_recognised() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:1/pks")  # nothing listens on port 1
    with pytest.raises(Exception) as err:
        engine.connect()
    assert is_unreachable(err.value)
    engine.dispose()


def test_ensure_schema_creates_tables_and_version_rows_once(engine: Engine) -> None:
    ensure_schema(engine)
    ensure_schema(engine)
    assert rows(engine, "SELECT table_name, table_version FROM version ORDER BY id") == [
        ("version", 1),
        ("address", 6),
        ("dialplan", 2),
        ("dispatcher", 4),
    ]
    assert check_versions(engine) == {"address": 6, "dialplan": 2, "dispatcher": 4}


def test_ensure_schema_never_alters_an_existing_table(engine: Engine) -> None:
    sql(engine, "CREATE TABLE dispatcher (id INTEGER PRIMARY KEY, setid INTEGER, destination TEXT)")
    ensure_schema(engine)
    with engine.connect() as conn:
        columns = [column["name"] for column in inspect(conn).get_columns("dispatcher")]
    assert columns == ["id", "setid", "destination"]
    assert rows(engine, "SELECT table_version FROM version WHERE table_name = 'dispatcher'") == [
        (4,)
    ]


def test_missing_version_table_is_reported(engine: Engine) -> None:
    with pytest.raises(SchemaVersionError, match="table version is missing"):
        check_versions(engine)


def test_every_incompatible_table_is_reported(engine: Engine) -> None:
    ensure_schema(engine)
    sql(
        engine,
        "UPDATE version SET table_version = 5 WHERE table_name = 'address'",
        "DELETE FROM version WHERE table_name = 'dialplan'",
        "DROP TABLE dispatcher",
    )
    with pytest.raises(SchemaVersionError) as err:
        check_versions(engine)
    message = str(err.value)
    assert "table address has version 5, expected 6" in message
    assert "table dialplan has no row in table version (expected table_version 2)" in message
    assert "table dispatcher is missing" in message


def test_dispatcher_versions_one_to_four_are_accepted(engine: Engine) -> None:
    ensure_schema(engine)
    for version in (1, 2, 3, 4):
        sql(engine, f"UPDATE version SET table_version = {version} WHERE table_name = 'dispatcher'")
        assert check_versions(engine)["dispatcher"] == version
    sql(engine, "UPDATE version SET table_version = 5 WHERE table_name = 'dispatcher'")
    with pytest.raises(SchemaVersionError, match="expected 1/2/3/4"):
        check_versions(engine)


def test_a_value_the_database_refuses_becomes_a_clear_refusal(engine: Engine) -> None:
    """The provisioning writes' last guard: what the checks let through but a column cannot
    hold is a 422 with the database's reason, never a raw error (SQLite holds anything)."""
    from sqlalchemy import insert, select

    from pks.db.schema import address
    from pks.provision.errors import Invalid
    from pks.provision.store import ensure_tables, refused_values

    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite stores any value in any column")
    ensure_tables(engine)
    row = {"id": 1, "grp": 1, "ip_addr": "192.0.2.1", "mask": 32, "port": 99999, "tag": None}
    with pytest.raises(Invalid) as refused, refused_values(), engine.begin() as conn:
        conn.execute(insert(address).values(**row))  # address.port is a SMALLINT
    assert refused.value.status == 422
    assert "out of range" in " ".join(refused.value.problems).lower()
    with engine.connect() as conn:
        assert conn.execute(select(address)).all() == []  # rolled back
