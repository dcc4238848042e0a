"""Beside the data path: list, get, create, update and delete rows of ``address``,
``dialplan``, ``dispatcher`` and ``pks_set``, checked before anything is written.

Each write runs in one transaction: read every table, apply the change to the rows in
memory, judge the result with :func:`pks.provision.checks.check_change` (the same build the
router uses, so a regex is compiled by the router's PCRE engine and a URI parsed by the
router's parser), and only then write. A refused change raises and writes nothing.

Rows are plain dicts (column → value) with one extra key, ``owner``: the customer or
provider owning the row (``{"kind", "name"}``), None for a row that belongs to nobody.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Collection, Mapping
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, inspect, update

from pks.db.own import pks_set
from pks.provision.checks import check_change
from pks.provision.errors import Invalid, NotFound
from pks.provision.owners import Owners
from pks.provision.store import (
    KAMAILIO_TABLES,
    check_fits,
    ensure_tables,
    read_all,
    read_rows,
    refused_values,
    sync_sequence,
)
from pks.route import DPID_DID, DPID_OFFNET, DPIDS_BY_GROUP
from pks.route.algorithms import parse_algorithm
from pks.route.dispatch import parse_ruri_host
from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, SetRow, TableRows

__all__ = [
    "FIELDS",
    "Change",
    "create_row",
    "delete_row",
    "delete_set",
    "get_row",
    "list_rows",
    "list_sets",
    "put_set",
    "require_ruri_host_column",
    "update_row",
    "write",
]

Row = AddressRow | DialplanRow | DispatcherRow
_ROW_TYPES: dict[str, type[Row]] = {
    "address": AddressRow,
    "dialplan": DialplanRow,
    "dispatcher": DispatcherRow,
}
_FIELD = tuple[type, Any]  # (type, default); default ... = required
FIELDS: dict[str, dict[str, _FIELD]] = {
    "address": {
        "grp": (int, ...),
        "ip_addr": (str, ...),
        "mask": (int, 32),
        "port": (int, 0),
        "tag": (str, None),
    },
    "dialplan": {
        "dpid": (int, ...),
        "pr": (int, 0),
        "match_op": (int, 1),
        "match_exp": (str, ...),
        "match_len": (int, 0),
        "subst_exp": (str, ""),
        "repl_exp": (str, ""),
        "attrs": (str, ...),
    },
    "dispatcher": {
        "setid": (int, ...),
        "destination": (str, ...),
        "flags": (int, 0),
        "priority": (int, 0),
        "attrs": (str, ""),
        "description": (str, ""),
    },
}
"""Writable columns per table: (type, default); ``...`` marks a required column."""

Change = Callable[[TableRows], tuple[TableRows, Callable[[Connection], Any]]]
"""Rows before → (rows after, the writer that makes the database match them)."""


def write(
    engine: Engine,
    change: Change,
    *,
    sockets: Collection[str] | None = None,
) -> Any:
    """Apply ``change`` in one transaction if the rows it leaves pass the checks; the
    writer's result."""
    ensure_tables(engine)
    with refused_values(), engine.begin() as conn:
        before = read_rows(conn)
        after, writer = change(before)
        check_change(before, after, sockets=sockets)
        check_fits(conn, after)
        return writer(conn)


# -- reading ------------------------------------------------------------------------------


def list_rows(engine: Engine, table: str) -> list[dict[str, Any]]:
    """Every row of ``table`` in load order, with its owner."""
    rows = read_all(engine)
    owners = Owners(rows)
    return [_dict(table, row, owners) for row in getattr(rows, _known(table))]


def get_row(engine: Engine, table: str, row_id: int) -> dict[str, Any]:
    rows = read_all(engine)
    return _dict(table, _find(rows, table, row_id), Owners(rows))


def list_sets(engine: Engine) -> list[dict[str, Any]]:
    """Every dispatcher set: id, algorithm (None = the global default), R-URI host (keep or
    gateway), gateway count."""
    rows = read_all(engine)
    overrides = {s.setid: s for s in rows.sets}
    counts: dict[int, int] = {}
    for d in rows.dispatcher:
        counts[d.setid] = counts.get(d.setid, 0) + 1
    owners = Owners(rows)
    return [
        {
            "setid": setid,
            "algorithm": overrides[setid].algorithm if setid in overrides else None,
            "ruri_host": overrides[setid].ruri_host if setid in overrides else "keep",
            "gateways": counts.get(setid, 0),
            "owner": owners.of_set(setid),
        }
        for setid in sorted(set(counts) | set(overrides))
    ]


# -- writing ------------------------------------------------------------------------------


def create_row(
    engine: Engine, table: str, values: Mapping[str, Any], **checks: Any
) -> dict[str, Any]:
    """Insert one row (id = max + 1); raises :class:`Invalid` with every reason."""
    clean = _values(table, values, partial=False)
    kamailio = KAMAILIO_TABLES[_known(table)]

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        new_id = max((r.id for r in getattr(rows, table)), default=0) + 1
        row = _ROW_TYPES[table](id=new_id, **clean)

        def writer(conn: Connection) -> dict[str, Any]:
            conn.execute(insert(kamailio).values(id=new_id, **clean))
            sync_sequence(conn, kamailio)
            return {"id": new_id, **clean}

        return _with(rows, table, (*getattr(rows, table), row)), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


def update_row(
    engine: Engine, table: str, row_id: int, values: Mapping[str, Any], **checks: Any
) -> dict[str, Any]:
    """Change some columns of one row; raises :class:`NotFound` / :class:`Invalid`."""
    clean = _values(table, values, partial=True)
    kamailio = KAMAILIO_TABLES[_known(table)]

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        old = _find(rows, table, row_id)
        new = dataclasses.replace(old, **clean)
        replaced = tuple(new if r.id == row_id else r for r in getattr(rows, table))

        def writer(conn: Connection) -> dict[str, Any]:
            if clean:
                conn.execute(update(kamailio).where(kamailio.c.id == row_id).values(**clean))
            return dataclasses.asdict(new)

        return _with(rows, table, replaced), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


def delete_row(engine: Engine, table: str, row_id: int, **checks: Any) -> dict[str, Any]:
    """Delete one row; refused if that leaves a dialplan rule pointing at an empty set."""
    kamailio = KAMAILIO_TABLES[_known(table)]

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        old = _find(rows, table, row_id)
        kept = tuple(r for r in getattr(rows, table) if r.id != row_id)

        def writer(conn: Connection) -> dict[str, Any]:
            conn.execute(delete(kamailio).where(kamailio.c.id == row_id))
            return dataclasses.asdict(old)

        return _with(rows, table, kept), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


def put_set(
    engine: Engine,
    setid: int,
    algorithm: str | None = None,
    ruri_host: str | None = None,
    **checks: Any,
) -> dict[str, Any]:
    """Override a dispatcher set's algorithm (a name or Kamailio number) and/or its R-URI
    host (``keep`` or ``gateway``); what is not given stays as it was. The set must exist."""
    problems: list[str] = []
    name = host = None
    if algorithm is None and ruri_host is None:
        problems.append("nothing to set: give algorithm and/or ruri_host")
    try:
        name = None if algorithm is None else parse_algorithm(algorithm)
    except ValueError as exc:
        problems.append(str(exc))
    try:
        host = None if ruri_host is None else parse_ruri_host(ruri_host)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise Invalid("refused, nothing was written", problems)

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        if not any(d.setid == setid for d in rows.dispatcher):
            raise NotFound(f"set {setid} does not exist (no dispatcher row with setid {setid})")
        old = next((s for s in rows.sets if s.setid == setid), SetRow(setid, None))
        new = SetRow(
            setid,
            name if algorithm is not None else old.algorithm,
            host if host is not None else old.ruri_host,
        )
        kept = tuple(s for s in rows.sets if s.setid != setid)
        overrides = new.algorithm is not None or new.ruri_host != "keep"

        def writer(conn: Connection) -> dict[str, Any]:
            values: dict[str, Any] = {"setid": setid, "algorithm": new.algorithm}
            if new.algorithm is None or new.ruri_host != "keep":
                require_ruri_host_column(conn)
                values["ruri_host"] = new.ruri_host
            conn.execute(delete(pks_set).where(pks_set.c.setid == setid))
            if overrides:  # back to every default: no row at all, as delete_set leaves it
                conn.execute(insert(pks_set).values(**values))
            return {"setid": setid, "algorithm": new.algorithm, "ruri_host": new.ruri_host}

        after = (*kept, new) if overrides else kept
        return dataclasses.replace(rows, sets=after), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


def delete_set(engine: Engine, setid: int, **checks: Any) -> dict[str, Any]:
    """Forget a set's overrides (it then uses ``PKS_DISPATCHER_ALG`` and keeps the R-URI
    host)."""

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        old = [s for s in rows.sets if s.setid == setid]
        if not old:
            raise NotFound(f"set {setid} has no override (algorithm or ruri_host)")

        def writer(conn: Connection) -> dict[str, Any]:
            conn.execute(delete(pks_set).where(pks_set.c.setid == setid))
            return {"setid": setid, "algorithm": old[0].algorithm, "ruri_host": old[0].ruri_host}

        kept = tuple(s for s in rows.sets if s is not old[0])
        return dataclasses.replace(rows, sets=kept), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


def require_ruri_host_column(conn: Connection) -> None:
    """Refuse (rolling back) a write the table cannot hold: revision 0001 has no
    ``ruri_host`` and a NOT NULL ``algorithm``; start-up never upgrades on its own."""
    columns = {c["name"] for c in inspect(conn).get_columns("pks_set")}
    if "ruri_host" not in columns:
        raise Invalid(
            "refused, nothing was written",
            ["pks_set has no ruri_host column yet (revision 0001): run pks db upgrade"],
        )


def require_column(conn: Connection, table: str, column: str, revision: str) -> None:
    """Refuse (rolling back) a write of ``column``, which ``table`` gets at ``revision``, in
    a database not upgraded yet (start-up never upgrades on its own)."""
    if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
        raise Invalid(
            "refused, nothing was written",
            [f"{table} has no {column} column yet (revision {revision}): run pks db upgrade"],
        )


# -- helpers ------------------------------------------------------------------------------


def _known(table: str) -> str:
    if table not in FIELDS:
        raise NotFound(f"unknown table {table!r} (address, dialplan or dispatcher)")
    return table


def _find(rows: TableRows, table: str, row_id: int) -> Row:
    for row in getattr(rows, _known(table)):
        if row.id == row_id:
            return row  # type: ignore[no-any-return]
    raise NotFound(f"{table} has no row with id {row_id}")


def _with(rows: TableRows, table: str, new: tuple[Any, ...]) -> TableRows:
    return dataclasses.replace(rows, **{table: new})


def _dict(table: str, row: Row, owners: Owners) -> dict[str, Any]:
    return {**dataclasses.asdict(row), "owner": owners.of(table, row)}


def _values(table: str, values: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Type-checked column values (defaults filled in unless ``partial``)."""
    fields = FIELDS[_known(table)]
    problems = [f"unknown column {name!r}" for name in values if name not in fields]
    clean: dict[str, Any] = {}
    for name, (kind, default) in fields.items():
        if name not in values:
            if default is ... and not partial:
                problems.append(f"{name} is required")
            elif not partial:
                clean[name] = default
            continue
        value = values[name]
        if value is None and default is None:
            clean[name] = None
        elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            problems.append(f"{name} must be an integer, not {value!r}")
        elif kind is str and not isinstance(value, str):
            problems.append(f"{name} must be a string, not {value!r}")
        else:
            clean[name] = value
    problems.extend(_column_problems(table, clean))
    if problems:
        raise Invalid(f"refused, nothing was written ({table})", problems)
    return clean


def _column_problems(table: str, clean: Mapping[str, Any]) -> list[str]:
    """Lengths the database would truncate or refuse, and checks of single columns."""
    found: list[str] = []
    kamailio: Table = KAMAILIO_TABLES[table]
    for name, value in clean.items():
        limit = getattr(kamailio.c[name].type, "length", None)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            found.append(f"{name} is {len(value)} characters long (the column holds {limit})")
    if table == "address" and "ip_addr" in clean:
        try:
            ipaddress.ip_address(str(clean["ip_addr"]).strip("[]"))
        except ValueError:
            found.append(
                f"ip_addr {clean['ip_addr']!r} is not an IP address (host names are never"
                " matched against a request's source)"
            )
    if table == "address" and "grp" in clean and clean["grp"] not in DPIDS_BY_GROUP:
        found.append(f"grp {clean['grp']} is unknown: 1 = customer, 2 = provider")
    if table == "dialplan" and "dpid" in clean and clean["dpid"] not in (DPID_DID, DPID_OFFNET):
        found.append(f"dpid {clean['dpid']} is unknown: 1 = DIDs, 2 = routes to providers")
    return found
