"""Beside the data path: checked writes of the flood and fraud tables — ``pks_ban`` (banned
addresses and networks), ``pks_block`` (blocked destination prefixes) — and of a peer's
limits (``max_calls``, ``max_cps``, ``max_intl_calls``).

Like every write, each one is checked by building the snapshot it leaves before anything is
written (:func:`pks.provision.tables.write`), then applied by the running proxy at once (API)
or when it sees the change (database). A database not upgraded to revision 0003 refuses with
the command to run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, inspect, update

from pks.db.own import pks_ban, pks_block, pks_peer
from pks.provision.errors import Conflict, Invalid, NotFound
from pks.provision.store import read_all, sync_sequence
from pks.provision.tables import require_column, write
from pks.route.fraud import parse_ban_address, parse_prefix
from pks.route.rows import BanRow, BlockRow, TableRows

__all__ = [
    "add_ban",
    "add_block",
    "delete_ban",
    "delete_block",
    "list_bans",
    "list_blocks",
    "set_limits",
]

LIMITS = ("max_calls", "max_cps", "max_intl_calls")


def _require_table(conn: Connection, table: str) -> None:
    if not inspect(conn).has_table(table):
        raise Invalid(
            "refused, nothing was written",
            [f"there is no {table} table yet (revision 0003): run pks db upgrade"],
        )


# -- bans ---------------------------------------------------------------------------------------


def _canonical(address: str) -> str | None:
    """A row's address as the gate reads it (a row written by hand may say 10.0.0.9/8)."""
    try:
        return parse_ban_address(address)
    except ValueError:
        return None


def ban_view(row: BanRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "address": row.address,
        "reason": row.reason,
        "created": row.created or None,
        "expires": row.expires,
        "origin": "table",
    }


def list_bans(engine: Engine) -> list[dict[str, Any]]:
    """The ``pks_ban`` rows (expired ones included: the table keeps them until removed)."""
    return [ban_view(r) for r in read_all(engine).bans]


def add_ban(
    engine: Engine,
    address: str,
    reason: str = "",
    seconds: float | None = None,
    **checks: Any,
) -> dict[str, Any]:
    """Ban an address or network (``IP``, ``IP/PREFIX``) for ``seconds`` (None: for ever);
    banning it again replaces the reason and the expiry."""
    try:
        canonical = parse_ban_address(address)
    except ValueError as exc:
        raise Invalid("refused, nothing was written", [str(exc)]) from None
    if seconds is not None and (not math.isfinite(seconds) or seconds <= 0):
        raise Invalid("refused, nothing was written", [f"seconds {seconds!r} must be > 0"])
    if len(reason) > 255:
        raise Invalid("refused, nothing was written", ["reason: at most 255 characters"])
    now = int(time.time())
    expires = None if seconds is None else now + math.ceil(seconds)

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        old = next((b for b in rows.bans if _canonical(b.address) == canonical), None)
        new_id = old.id if old is not None else max((b.id for b in rows.bans), default=0) + 1
        row = BanRow(new_id, canonical, reason, now, expires)
        kept = tuple(b for b in rows.bans if b is not old)

        def writer(conn: Connection) -> dict[str, Any]:
            _require_table(conn, "pks_ban")
            values = dataclasses.asdict(row)
            if old is not None:
                conn.execute(update(pks_ban).where(pks_ban.c.id == old.id).values(**values))
            else:
                conn.execute(insert(pks_ban).values(**values))
                sync_sequence(conn, pks_ban)
            return ban_view(row)

        return dataclasses.replace(rows, bans=(*kept, row)), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


def delete_ban(engine: Engine, address: str, **checks: Any) -> dict[str, Any]:
    """Remove the ``pks_ban`` row of ``address``; NotFound when there is none."""
    try:
        canonical = parse_ban_address(address)
    except ValueError as exc:
        raise Invalid("refused, nothing was written", [str(exc)]) from None

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        old = next((b for b in rows.bans if _canonical(b.address) == canonical), None)
        if old is None:
            raise NotFound(f"no ban of {canonical} in pks_ban")

        def writer(conn: Connection) -> dict[str, Any]:
            conn.execute(delete(pks_ban).where(pks_ban.c.id == old.id))
            return ban_view(old)

        return dataclasses.replace(rows, bans=tuple(b for b in rows.bans if b is not old)), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


# -- blocked prefixes -------------------------------------------------------------------------


def list_blocks(engine: Engine) -> list[dict[str, Any]]:
    return [dataclasses.asdict(r) for r in read_all(engine).blocks]


def add_block(
    engine: Engine, prefix: str, tag: str | None = None, reason: str = "", **checks: Any
) -> dict[str, Any]:
    """Block numbers starting with ``prefix`` for every peer (``tag`` None) or one peer."""
    problems: list[str] = []
    try:
        prefix = parse_prefix(prefix)
    except ValueError as exc:
        problems.append(str(exc))
    if len(reason) > 255:
        problems.append("reason: at most 255 characters")
    if problems:
        raise Invalid("refused, nothing was written", problems)

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        if (
            tag is not None
            and not any(p.tag == tag for p in rows.peers)
            and not any(a.tag == tag for a in rows.address)
        ):
            raise NotFound(f"no peer has the tag {tag!r}")
        if any(b.prefix == prefix and b.tag == tag for b in rows.blocks):
            whose = "every peer" if tag is None else f"peer {tag}"
            raise Conflict(
                "refused, nothing was written", [f"{prefix} is already blocked for {whose}"]
            )
        row = BlockRow(max((b.id for b in rows.blocks), default=0) + 1, prefix, tag, reason)

        def writer(conn: Connection) -> dict[str, Any]:
            _require_table(conn, "pks_block")
            conn.execute(insert(pks_block).values(**dataclasses.asdict(row)))
            sync_sequence(conn, pks_block)
            return dataclasses.asdict(row)

        return dataclasses.replace(rows, blocks=(*rows.blocks, row)), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


def delete_block(engine: Engine, block_id: int, **checks: Any) -> dict[str, Any]:
    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        old = next((b for b in rows.blocks if b.id == block_id), None)
        if old is None:
            raise NotFound(f"no pks_block row with id {block_id}")

        def writer(conn: Connection) -> dict[str, Any]:
            conn.execute(delete(pks_block).where(pks_block.c.id == block_id))
            return dataclasses.asdict(old)

        blocks = tuple(b for b in rows.blocks if b is not old)
        return dataclasses.replace(rows, blocks=blocks), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result


# -- a peer's limits ----------------------------------------------------------------------------


def set_limits(
    engine: Engine, kind: str, name: str, limits: dict[str, int | None], **checks: Any
) -> dict[str, Any]:
    """Change a customer's or provider's ``max_calls``, ``max_cps``, ``max_intl_calls``
    (given keys only; None or 0: unlimited)."""
    problems = [f"unknown limit {k!r} ({', '.join(LIMITS)})" for k in limits if k not in LIMITS]
    for key, value in limits.items():
        if value is not None and (not isinstance(value, int) or value < 0):
            problems.append(f"{key} {value!r} is not a number >= 0")
    if not limits:
        problems.append(f"nothing to set: give {', '.join(LIMITS)}")
    if problems:
        raise Invalid("refused, nothing was written", problems)
    values = {k: (v or None) for k, v in limits.items()}

    def change(rows: TableRows) -> tuple[TableRows, Callable[[Connection], Any]]:
        peer = next((p for p in rows.peers if p.kind == kind and p.name == name), None)
        if peer is None:
            raise NotFound(f"no {kind} named {name!r}")
        new = dataclasses.replace(peer, **values)  # type: ignore[arg-type]

        def writer(conn: Connection) -> dict[str, Any]:
            for key in values:
                if key != "max_calls":
                    require_column(conn, "pks_peer", key, "0003")
            conn.execute(update(pks_peer).where(pks_peer.c.id == peer.id).values(**values))
            return {"kind": kind, "name": name, **{k: getattr(new, k) for k in LIMITS}}

        peers = tuple(new if p is peer else p for p in rows.peers)
        return dataclasses.replace(rows, peers=peers), writer

    result: dict[str, Any] = write(engine, change, **checks)
    return result
