"""Beside the data path: read the routing tables into typed rows for a snapshot build.

``load_tables(engine)`` checks the table versions, then reads ``address``, ``dialplan`` and
``dispatcher`` — and our ``pks_peer``/``pks_set`` when present (a pure Kamailio database has
none) — in one transaction, each ``ORDER BY id`` (``pks_set``: ``setid``) so that "load
order" (which decides duplicate addresses and dispatcher ties) is deterministic. It checks
value *types* only — a NULL in a NOT NULL column, a non-integer in an integer column — as
Kamailio's loaders do ("invalid record"); meaning (groups, masks, regexes, URIs) is checked by
``pks.route.snapshot.build_snapshot``. Like Kamailio, a NULL dispatcher ``attrs`` (or
``description``) reads as '', and a dispatcher table of version 1–3 is read without the
columns that version lacks (flags, priority, attrs then default to 0, 0, '').

Blocking code: the server calls it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Table, inspect, select

from pks.db import own, schema
from pks.db.engine import check_versions
from pks.route.rows import (
    AddressRow,
    BanRow,
    BlockRow,
    DialplanRow,
    DispatcherRow,
    PeerRow,
    SetRow,
    TableRows,
)

__all__ = [
    "AddressRow",
    "DialplanRow",
    "DispatcherRow",
    "LoadError",
    "TableRows",
    "load_rows",
    "load_tables",
]

R = TypeVar("R")

# dispatcher columns Kamailio reads for each table version
_DISPATCHER_COLUMNS = {
    1: ("setid", "destination"),
    2: ("setid", "destination", "flags"),
    3: ("setid", "destination", "flags", "priority"),
    4: ("setid", "destination", "flags", "priority", "attrs"),
}


class LoadError(ValueError):
    """Rows whose values have the wrong type; ``problems`` has one line per bad value."""

    def __init__(self, problems: Sequence[str] | str) -> None:
        lines = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("\n".join(lines))
        self.problems = lines


def load_tables(engine: Engine) -> TableRows:
    """Read every routing table (version-checked, ``ORDER BY id``) into :class:`TableRows`."""
    with engine.connect() as conn:
        return load_rows(conn)


def load_rows(conn: Connection) -> TableRows:
    """:func:`load_tables` on an open connection (one transaction with the caller's reads)."""
    versions = check_versions(conn)
    present = set(inspect(conn).get_table_names())
    problems: list[str] = []
    address = _read(conn, "address", _address_row, problems)
    dialplan = _read(conn, "dialplan", _dialplan_row, problems)
    dispatcher = _read_dispatcher(conn, versions["dispatcher"], problems)
    peers = _read_present(conn, own.pks_peer, _peer_row, problems, present)
    sets = _read_present(conn, own.pks_set, _set_row, problems, present)
    bans = _read_present(conn, own.pks_ban, _ban_row, problems, present)
    blocks = _read_present(conn, own.pks_block, _block_row, problems, present)
    if problems:
        raise LoadError(problems)
    return TableRows(
        address=address,
        dialplan=dialplan,
        dispatcher=dispatcher,
        peers=peers,
        sets=sets,
        bans=bans,
        blocks=blocks,
    )


def _read(
    conn: Connection,
    name: str,
    make: Callable[[_Values], R],
    problems: list[str],
    columns: Sequence[str] | None = None,
) -> tuple[R, ...]:
    table = schema.metadata.tables.get(name)
    if table is None:
        table = own.own_metadata.tables[name]
    selected = [table.c[column] for column in columns] if columns else list(table.c)
    query = select(*selected).order_by(*table.primary_key.columns)
    rows: list[R] = []
    for mapping in conn.execute(query).mappings():
        values = _Values(name, dict(mapping), problems)
        row = make(values)
        if values.ok:
            rows.append(row)
    return tuple(rows)


def _read_dispatcher(
    conn: Connection, version: int, problems: list[str]
) -> tuple[DispatcherRow, ...]:
    present = {column["name"] for column in inspect(conn).get_columns("dispatcher")}
    wanted = ["id", *_DISPATCHER_COLUMNS[version]]
    if "description" in present:
        wanted.append("description")
    return _read(conn, "dispatcher", _dispatcher_row, problems, wanted)


def _read_present(
    conn: Connection,
    table: Table,
    make: Callable[[_Values], R],
    problems: list[str],
    present: set[str],
) -> tuple[R, ...]:
    """One of our tables as it is: absent (a pure Kamailio database) reads as empty, and a
    table at an older revision (``pks db upgrade`` not run yet, which start-up never does on
    its own) is read without the columns it lacks — ``pks_set.ruri_host`` reads as ``keep``,
    ``pks_peer.max_cps`` as unlimited."""
    if table.name not in present:
        return ()
    columns = {column["name"] for column in inspect(conn).get_columns(table.name)}
    wanted = [c.name for c in table.c if c.name in columns]
    return _read(conn, table.name, make, problems, wanted)


class _Values:
    """One fetched row: typed getters that record a problem instead of raising."""

    def __init__(self, table: str, values: dict[str, Any], problems: list[str]) -> None:
        self.table = table
        self.values = values
        self.problems = problems
        self.ok = True
        self.id = self.integer("id") if "id" in values else 0

    def _bad(self, message: str) -> None:
        self.ok = False
        key = "setid" if "id" not in self.values else "id"
        self.problems.append(f"{self.table} {key} {self.values.get(key)}: {message}")

    def integer(self, column: str, default: int | None = None) -> int:
        """The column as an int; NULL (or an absent column) is an error unless defaulted."""
        value = self.values.get(column)
        if value is None and default is not None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return int(value)
        self._bad(f"{column} is {'NULL' if value is None else repr(value)}, not an integer")
        return 0

    def text(self, column: str, *, null: str | None = None) -> str:
        """The column as text; NULL (or an absent column) is an error unless ``null``."""
        value = self.values.get(column)
        if value is None:
            if null is not None:
                return null
            self._bad(f"{column} is NULL")
            return ""
        if isinstance(value, bytes):
            return value.decode("utf-8", "surrogateescape")
        return str(value)

    def optional_text(self, column: str) -> str | None:
        value = self.values.get(column)
        return None if value is None else self.text(column)


def _address_row(v: _Values) -> AddressRow:
    return AddressRow(
        id=v.id,
        grp=v.integer("grp"),
        ip_addr=v.text("ip_addr"),
        mask=v.integer("mask"),
        port=v.integer("port"),
        tag=v.optional_text("tag"),
    )


def _dialplan_row(v: _Values) -> DialplanRow:
    return DialplanRow(
        id=v.id,
        dpid=v.integer("dpid"),
        pr=v.integer("pr"),
        match_op=v.integer("match_op"),
        match_exp=v.text("match_exp"),
        match_len=v.integer("match_len"),
        subst_exp=v.text("subst_exp"),
        repl_exp=v.text("repl_exp"),
        attrs=v.text("attrs"),
    )


def _dispatcher_row(v: _Values) -> DispatcherRow:
    return DispatcherRow(
        id=v.id,
        setid=v.integer("setid"),
        destination=v.text("destination"),
        flags=v.integer("flags", 0),
        priority=v.integer("priority", 0),
        attrs=v.text("attrs", null=""),
        description=v.text("description", null=""),
    )


def _peer_row(v: _Values) -> PeerRow:
    max_calls = v.values.get("max_calls")
    return PeerRow(
        id=v.id,
        kind=v.text("kind"),
        name=v.text("name"),
        tag=v.text("tag"),
        setid=v.integer("setid"),
        socket=v.optional_text("socket"),
        max_calls=None if max_calls is None else v.integer("max_calls"),
        description=v.text("description", null=""),
        max_cps=_optional_integer(v, "max_cps"),
        max_intl_calls=_optional_integer(v, "max_intl_calls"),
    )


def _optional_integer(v: _Values, column: str) -> int | None:
    return None if v.values.get(column) is None else v.integer(column)


def _ban_row(v: _Values) -> BanRow:
    return BanRow(
        id=v.id,
        address=v.text("address"),
        reason=v.text("reason", null=""),
        created=v.integer("created", 0),
        expires=_optional_integer(v, "expires"),
    )


def _block_row(v: _Values) -> BlockRow:
    return BlockRow(
        id=v.id,
        prefix=v.text("prefix"),
        tag=v.optional_text("tag"),
        reason=v.text("reason", null=""),
    )


def _set_row(v: _Values) -> SetRow:
    return SetRow(
        setid=v.integer("setid"),
        algorithm=v.optional_text("algorithm"),
        ruri_host=v.text("ruri_host", null="keep"),
    )
