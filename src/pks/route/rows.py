"""Snapshot input: one frozen value per row of Kamailio's ``address``, ``dialplan`` and
``dispatcher`` tables, typed but not yet validated.

Produced by ``pks.db.load`` (or by tests and admin tools), consumed by
``pks.route.snapshot.build_snapshot``, which checks meaning (groups, masks, regexes, URIs).
Values keep the database's spelling: strings are not stripped, NULL ``tag`` stays ``None``.
Kept free of SQLAlchemy so that the routing core never imports the database layer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AddressRow:
    """A row of ``address`` (permissions module, table version 6)."""

    id: int
    grp: int
    ip_addr: str
    mask: int
    port: int
    tag: str | None


@dataclass(frozen=True, slots=True)
class DialplanRow:
    """A row of ``dialplan`` (dialplan module, table version 2)."""

    id: int
    dpid: int
    pr: int
    match_op: int
    match_exp: str
    match_len: int
    subst_exp: str
    repl_exp: str
    attrs: str


@dataclass(frozen=True, slots=True)
class DispatcherRow:
    """A row of ``dispatcher`` (dispatcher module, table version 4; NULL attrs read as '')."""

    id: int
    setid: int
    destination: str
    flags: int
    priority: int
    attrs: str
    description: str


@dataclass(frozen=True, slots=True)
class PeerRow:
    """A row of our ``pks_peer`` table (a customer or provider; see ``pks.db.own``)."""

    id: int
    kind: str
    name: str
    tag: str
    setid: int
    socket: str | None = None
    max_calls: int | None = None
    description: str = ""
    max_cps: int | None = None  # new calls per second from its sources (0003)
    max_intl_calls: int | None = None  # concurrent international calls (0003)


@dataclass(frozen=True, slots=True)
class SetRow:
    """A row of our ``pks_set`` table: a dispatcher set's overrides. ``algorithm`` None = the
    global default; ``ruri_host`` ``keep`` (the default) or ``gateway``."""

    setid: int
    algorithm: str | None
    ruri_host: str = "keep"


@dataclass(frozen=True, slots=True)
class BanRow:
    """A row of our ``pks_ban`` table: an address or network banned, with why and until when
    (Unix seconds; None = never)."""

    id: int
    address: str
    reason: str = ""
    created: int = 0
    expires: int | None = None


@dataclass(frozen=True, slots=True)
class BlockRow:
    """A row of our ``pks_block`` table: a destination prefix refused (403) for every peer
    (``tag`` None) or for the peer of that tag."""

    id: int
    prefix: str
    tag: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TableRows:
    """Everything a snapshot is built from, each table in load order (``ORDER BY id``)."""

    address: tuple[AddressRow, ...] = ()
    dialplan: tuple[DialplanRow, ...] = ()
    dispatcher: tuple[DispatcherRow, ...] = ()
    peers: tuple[PeerRow, ...] = ()
    sets: tuple[SetRow, ...] = ()
    bans: tuple[BanRow, ...] = ()
    blocks: tuple[BlockRow, ...] = ()
