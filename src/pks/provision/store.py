"""Beside the data path: reading every routing table in one transaction, and writing rows
with explicit ids.

Blocking SQLAlchemy Core code shared by the admin API (through ``asyncio.to_thread``) and by
the CLI working on the database directly. Rows are read ``ORDER BY id`` (the load order the
router uses) into :mod:`pks.route.rows` values, with the same NULL rules as
:mod:`pks.db.load`; a value of the wrong type is reported, not guessed.

New rows get ``id = max(id) + 1`` computed inside the writing transaction, never a sequence
value: imported rows keep their ids, and a later insert must not collide with them. On
PostgreSQL the ``SERIAL`` sequence is then moved past the highest id, so that Kamailio's own
tools (which rely on the sequence) keep working.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, func, inspect, select, text

from pks.db import migrate, schema
from pks.db.own import pks_peer, pks_set
from pks.provision.errors import Invalid
from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, PeerRow, SetRow, TableRows

__all__ = ["KAMAILIO_TABLES", "ensure_tables", "next_id", "read_rows", "sync_sequence"]

R = TypeVar("R")

KAMAILIO_TABLES: dict[str, Table] = {
    "address": schema.address,
    "dialplan": schema.dialplan,
    "dispatcher": schema.dispatcher,
}


def ensure_tables(engine: Engine) -> None:
    """Create Kamailio's tables and ours when missing (existing tables are never altered)."""
    migrate.prepare(engine)


def read_rows(conn: Connection) -> TableRows:
    """Every routing table and our own, in load order; :class:`Invalid` on a bad value."""
    problems: list[str] = []
    has_description = "description" in {c["name"] for c in inspect(conn).get_columns("dispatcher")}
    rows = TableRows(
        address=_read(conn, schema.address, _address, problems),
        dialplan=_read(conn, schema.dialplan, _dialplan, problems),
        dispatcher=_read(
            conn,
            schema.dispatcher,
            _dispatcher,
            problems,
            skip=() if has_description else ("description",),
        ),
        peers=_read(conn, pks_peer, _peer, problems),
        sets=_read(conn, pks_set, _set, problems, order="setid"),
    )
    if problems:
        raise Invalid("the tables hold values of the wrong type; fix them first", problems)
    return rows


def next_id(conn: Connection, table: Table) -> int:
    """The id for a new row: one past the highest id in the table."""
    highest = conn.execute(select(func.max(table.c.id))).scalar()
    return int(highest or 0) + 1


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


class _Values:
    """One fetched row with typed getters that record a problem instead of raising."""

    def __init__(self, table: str, values: Mapping[str, Any], problems: list[str]) -> None:
        self.table, self.values, self.problems = table, values, problems
        key = values.get("id", values.get("setid"))
        self.where = f"{table} id {key}"

    def integer(self, column: str, default: int | None = None) -> int:
        value = self.values.get(column)
        if value is None and default is not None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        self.problems.append(f"{self.where}: {column} is {value!r}, not an integer")
        return 0

    def optional_integer(self, column: str) -> int | None:
        return None if self.values.get(column) is None else self.integer(column)

    def text(self, column: str, null: str | None = None) -> str:
        value = self.values.get(column)
        if value is None:
            if null is None:
                self.problems.append(f"{self.where}: {column} is NULL")
            return null or ""
        if isinstance(value, bytes):
            return value.decode("utf-8", "surrogateescape")
        return str(value)

    def optional_text(self, column: str) -> str | None:
        return None if self.values.get(column) is None else self.text(column)


def _read(
    conn: Connection,
    table: Table,
    make: Callable[[_Values], R],
    problems: list[str],
    *,
    skip: tuple[str, ...] = (),
    order: str = "id",
) -> tuple[R, ...]:
    columns = [c for c in table.c if c.name not in skip]
    result = conn.execute(select(*columns).order_by(table.c[order])).mappings()
    return tuple(make(_Values(table.name, dict(row), problems)) for row in result)


def _address(v: _Values) -> AddressRow:
    return AddressRow(
        id=v.integer("id"),
        grp=v.integer("grp"),
        ip_addr=v.text("ip_addr"),
        mask=v.integer("mask"),
        port=v.integer("port"),
        tag=v.optional_text("tag"),
    )


def _dialplan(v: _Values) -> DialplanRow:
    return DialplanRow(
        id=v.integer("id"),
        dpid=v.integer("dpid"),
        pr=v.integer("pr"),
        match_op=v.integer("match_op"),
        match_exp=v.text("match_exp"),
        match_len=v.integer("match_len"),
        subst_exp=v.text("subst_exp"),
        repl_exp=v.text("repl_exp"),
        attrs=v.text("attrs"),
    )


def _dispatcher(v: _Values) -> DispatcherRow:
    return DispatcherRow(
        id=v.integer("id"),
        setid=v.integer("setid"),
        destination=v.text("destination"),
        flags=v.integer("flags", 0),
        priority=v.integer("priority", 0),
        attrs=v.text("attrs", ""),
        description=v.text("description", ""),
    )


def _peer(v: _Values) -> PeerRow:
    return PeerRow(
        id=v.integer("id"),
        kind=v.text("kind"),
        name=v.text("name"),
        tag=v.text("tag"),
        setid=v.integer("setid"),
        socket=v.optional_text("socket"),
        max_calls=v.optional_integer("max_calls"),
        description=v.text("description", ""),
    )


def _set(v: _Values) -> SetRow:
    return SetRow(setid=v.integer("setid"), algorithm=v.text("algorithm"))
