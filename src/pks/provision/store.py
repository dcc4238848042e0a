"""Beside the data path: reading every routing table in one transaction, and writing rows
with explicit ids.

Blocking SQLAlchemy Core code shared by the admin API (through ``asyncio.to_thread``) and by
the CLI working on the database directly. Rows are read by :mod:`pks.db.load` (the reader
the router uses); a value of the wrong type is reported, not guessed.

New rows get ``id = max(id) + 1`` computed inside the writing transaction, never a sequence
value: imported rows keep their ids, and a later insert must not collide with them. On
PostgreSQL the ``SERIAL`` sequence is then moved past the highest id, so that Kamailio's own
tools (which rely on the sequence) keep working.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, Table, text
from sqlalchemy.exc import DataError

from pks.db import migrate, schema
from pks.db.load import LoadError, load_rows
from pks.provision.errors import Invalid
from pks.route.rows import TableRows

__all__ = [
    "KAMAILIO_TABLES",
    "check_fits",
    "ensure_tables",
    "read_all",
    "read_rows",
    "refused_values",
    "sync_sequence",
]

SMALLINT_MAX = 32767  # PostgreSQL's SMALLINT is signed; MariaDB's address.port is unsigned

KAMAILIO_TABLES: dict[str, Table] = {
    "address": schema.address,
    "dialplan": schema.dialplan,
    "dispatcher": schema.dispatcher,
}


def ensure_tables(engine: Engine) -> None:
    """Create Kamailio's tables and ours when missing (existing tables are never altered)."""
    migrate.prepare(engine)


def read_all(engine: Engine) -> TableRows:
    """:func:`read_rows` in its own transaction (tables created first when missing)."""
    ensure_tables(engine)
    with engine.connect() as conn:
        return read_rows(conn)


def read_rows(conn: Connection) -> TableRows:
    """Every routing table and our own, in load order; :class:`Invalid` on a bad value."""
    try:
        return load_rows(conn)
    except LoadError as exc:
        raise Invalid(
            "the tables hold values of the wrong type; fix them first", exc.problems
        ) from None


def check_fits(conn: Connection, rows: TableRows) -> None:
    """Refuse, before writing, values the routing checks accept but this database's columns
    cannot hold: on PostgreSQL, ``address.port`` is a SMALLINT (Kamailio's schema), so a port
    above 32767 cannot be stored there."""
    if conn.dialect.name != "postgresql":
        return
    problems = [
        f"address {row.id}: port {row.port} is above 32767, the most PostgreSQL's address.port"
        " (SMALLINT, as in Kamailio's schema) can hold"
        for row in rows.address
        if row.port > SMALLINT_MAX
    ]
    if problems:
        raise Invalid("a value does not fit this database's columns, nothing was written", problems)


@contextmanager
def refused_values() -> Iterator[None]:
    """A value the database itself refuses (out of its column's range, too long) becomes
    :class:`Invalid` with the database's reason instead of a raw error; the transaction
    inside has rolled back."""
    try:
        yield
    except DataError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise Invalid("the database refused a value, nothing was written", [reason]) from None


def sync_sequence(conn: Connection, table: Table) -> None:
    """PostgreSQL: move the ``id`` sequence past the highest id (no-op elsewhere)."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(
        text(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
            f" COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"
        )
    )
