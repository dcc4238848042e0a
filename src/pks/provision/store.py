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

from sqlalchemy import Connection, Engine, Table, text

from pks.db import migrate, schema
from pks.db.load import LoadError, load_rows
from pks.provision.errors import Invalid
from pks.route.rows import TableRows

__all__ = ["KAMAILIO_TABLES", "ensure_tables", "read_all", "read_rows", "sync_sequence"]

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
