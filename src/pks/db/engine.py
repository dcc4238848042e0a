"""Beside the data path: database URL → SQLAlchemy engine, schema creation, version checks.

* :func:`make_engine` accepts ``sqlite:///path`` (the app's default ``sqlite:///./pks.db``),
  ``postgresql://…`` (driven by psycopg 3) and ``mysql://…``/``mariadb://…`` (PyMySQL);
  an explicit ``+driver`` is kept.
* :func:`ensure_schema` creates the missing Kamailio tables and inserts the missing
  ``version`` rows; it never alters an existing table, so a Kamailio database is left as is.
* :func:`check_versions` refuses tables whose ``version`` row Kamailio 5.6 would refuse
  (``address`` 6, ``dialplan`` 2, ``dispatcher`` 1–4), with a message saying what to do.

Blocking code: the server calls it from a worker thread, never from the event loop.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, create_engine, inspect, select
from sqlalchemy.engine import make_url

from pks.db import schema

__all__ = ["DEFAULT_URL", "SchemaVersionError", "check_versions", "ensure_schema", "make_engine"]

DEFAULT_URL = "sqlite:///./pks.db"

_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_MODULE_TABLES = ("address", "dialplan", "dispatcher")


class SchemaVersionError(RuntimeError):
    """A table is missing, or its ``version`` row is one this proxy cannot read."""


def make_engine(url: str = DEFAULT_URL) -> Engine:
    """An engine for ``url``; server databases get connection health checks (pre-ping)."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() == "sqlite":
        return create_engine(parsed)
    return create_engine(parsed, pool_pre_ping=True)


def ensure_schema(engine: Engine) -> None:
    """Create missing tables and ``version`` rows (existing tables are never altered)."""
    with engine.begin() as conn:
        schema.metadata.create_all(conn, checkfirst=True)
        present = set(conn.execute(select(schema.version.c.table_name)).scalars())
        missing = [
            {"table_name": name, "table_version": number}
            for name, number in schema.TABLE_VERSIONS.items()
            if name not in present
        ]
        if missing:
            conn.execute(schema.version.insert(), missing)


def check_versions(engine: Engine | Connection) -> dict[str, int]:
    """The table versions of ``address``, ``dialplan`` and ``dispatcher``.

    Raises :class:`SchemaVersionError` naming every table that is missing, has no
    ``version`` row, or has a version Kamailio 5.6 does not accept.
    """
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            return check_versions(conn)
    conn = engine
    tables = set(inspect(conn).get_table_names())
    if "version" not in tables:
        raise SchemaVersionError(
            "table version is missing: create the schema (pks creates it when the database"
            " is empty, or run Kamailio's standard-create.sql)"
        )
    rows = conn.execute(select(schema.version.c.table_name, schema.version.c.table_version))
    found = {str(name): int(number) for name, number in rows}
    problems: list[str] = []
    for name in _MODULE_TABLES:
        accepted = sorted(schema.ACCEPTED_VERSIONS[name])
        wanted = "/".join(map(str, accepted))
        if name not in tables:
            problems.append(f"table {name} is missing")
        elif name not in found:
            problems.append(
                f"table {name} has no row in table version (expected table_version {wanted})"
            )
        elif found[name] not in accepted:
            problems.append(
                f"table {name} has version {found[name]}, expected {wanted}: migrate it with"
                f" Kamailio 5.6's kamdbctl or recreate it"
            )
    if problems:
        raise SchemaVersionError("; ".join(problems))
    return {name: found[name] for name in _MODULE_TABLES}
