"""Beside the data path: database URL → SQLAlchemy engine, schema creation, version checks.

* :func:`make_engine` accepts ``sqlite:///path`` (the app's default ``sqlite:///./pks.db``),
  ``postgresql://…`` (driven by psycopg 3) and ``mysql://…``/``mariadb://…`` (PyMySQL);
  an explicit ``+driver`` is kept.
* :func:`ensure_schema` creates the missing Kamailio tables and inserts the missing
  ``version`` rows; it never alters an existing table, so a Kamailio database is left as is.
* :func:`is_unreachable` tells "the server is down" from "the content is wrong";
  :func:`schema_lock` serialises schema set-up between instances starting together.
* :func:`check_versions` refuses tables whose ``version`` row Kamailio 5.6 would refuse
  (``address`` 6, ``dialplan`` 2, ``dispatcher`` 1–4), with a message saying what to do.

Blocking code: the server calls it from a worker thread, never from the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from pks.db import schema

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_URL",
    "SchemaVersionError",
    "check_versions",
    "describe",
    "ensure_schema",
    "is_empty",
    "is_unreachable",
    "make_engine",
    "schema_lock",
]

DEFAULT_URL = "sqlite:///./pks.db"
CONNECT_TIMEOUT = 5
"""Seconds to wait for a database server to accept a connection (fail fast when it is down)."""
_LOCK_KEY = 0x706B735F  # "pks_": advisory lock id for schema changes

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
    """An engine for ``url``; server databases get connection health checks (pre-ping), a
    connect timeout of :data:`CONNECT_TIMEOUT` s and TCP keepalives (PostgreSQL) or read/write
    timeouts (MySQL), unless the URL sets them."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    if parsed.get_backend_name() == "sqlite":
        return create_engine(parsed)
    # a server that vanishes mid-query must not hold a worker thread (and reloads) forever
    if parsed.get_backend_name() == "postgresql":
        defaults: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
    else:
        defaults = {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": 60, "write_timeout": 60}
    connect_args = {key: value for key, value in defaults.items() if key not in parsed.query}
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def describe(engine: Engine) -> str:
    """The engine's URL with the password hidden, for messages."""
    return engine.url.render_as_string(hide_password=True)


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means "cannot talk to the database" rather than "bad content"."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError | TimeoutError):
        return True
    # a driver's own DB-API exception (psycopg's LISTEN connection, PyMySQL)
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"OperationalError", "InterfaceError"})


@contextmanager
def schema_lock(engine: Engine) -> Iterator[None]:
    """Serialise schema changes between instances starting at once (PostgreSQL advisory
    lock, MySQL ``GET_LOCK``; SQLite's own file lock is enough)."""
    backend = engine.url.get_backend_name()
    if backend not in ("postgresql", "mysql", "mariadb"):
        yield
        return
    with engine.connect() as conn:
        if backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _LOCK_KEY})
        else:
            got = conn.execute(text("SELECT GET_LOCK('pks_schema', 60)")).scalar()
            if got != 1:
                raise SchemaVersionError("another pks holds the schema lock for over 60 s")
        conn.commit()
        try:
            yield
        finally:
            if backend == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
            else:
                conn.execute(text("SELECT RELEASE_LOCK('pks_schema')"))
            conn.commit()


def is_empty(engine: Engine) -> bool:
    """No ``version`` table: a database nobody has set up (pks creates everything in it)."""
    with engine.connect() as conn:
        return "version" not in inspect(conn).get_table_names()


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
