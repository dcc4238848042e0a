"""Beside the data path: pks's own tables, next to Kamailio's (never altering those).

* ``pks_peer`` — customers and providers as first-class objects. A peer *owns* Kamailio rows
  by value, not by foreign key, so that hand-edited tables stay usable: the ``address`` rows
  whose ``tag`` equals ``pks_peer.tag``, the ``dispatcher`` rows whose ``setid`` equals
  ``pks_peer.setid``, and the ``dialplan`` rows of dpid 1 (customers' DIDs) or dpid 2
  (providers' routes) whose ``attrs`` is that set id. ``max_calls`` limits concurrent calls
  from the peer's sources (NULL or 0 = unlimited).
* ``pks_set`` — per dispatcher set overrides: the distribution algorithm (a name or Kamailio
  number from :mod:`pks.route.algorithms`; NULL = ``PKS_DISPATCHER_ALG``) and ``ruri_host``,
  what a relayed request's R-URI host becomes: ``keep`` (the caller's, like Kamailio's
  ``ds_select_dst``) or ``gateway`` (the chosen gateway's host, port and transport, like
  ``ds_select_domain``; see :mod:`pks.route.dispatch`).
* ``pks_ban`` (0003) — addresses and networks whose packets are dropped before parsing
  (:mod:`pks.guard.bans`): ``address`` an IP or a CIDR, ``reason``, ``created`` and
  ``expires`` in Unix seconds (``expires`` NULL = never).
* ``pks_block`` (0003) — destination prefixes answered 403 (:mod:`pks.route.fraud`):
  ``tag`` NULL for every peer, else the peer's tag; ``reason`` is shown to the operator.
  ``pks_peer.max_cps`` and ``pks_peer.max_intl_calls`` (0003) bound a peer's new calls per
  second and its concurrent international calls (NULL or 0 = unlimited).
* ``pks_cdr`` (0004) — one row per call attempt, written by the call records' database sink
  (:mod:`pks.cdr`, docs/cdr.md), times in UTC; migration 0004 also creates Kamailio's ``acc``
  table when absent, for the same records as Kamailio's acc module writes them.

Versioned with migrations (``pks db upgrade``); a Kamailio database without them is read as
"no peers, no overrides".
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql

__all__ = ["own_metadata", "pks_ban", "pks_block", "pks_cdr", "pks_peer", "pks_set"]

own_metadata = MetaData()

pks_peer = Table(
    "pks_peer",
    own_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # 'customer' | 'provider'
    Column("name", String(64), nullable=False),
    Column("tag", String(64), nullable=False),
    Column("setid", Integer, nullable=False),
    Column("socket", String(64), nullable=True),
    Column("max_calls", Integer, nullable=True),
    Column("description", String(255), nullable=False, server_default=""),
    Column("max_cps", Integer, nullable=True),  # 0003
    Column("max_intl_calls", Integer, nullable=True),  # 0003
    UniqueConstraint("name", name="pks_peer_name_uq"),
    UniqueConstraint("tag", name="pks_peer_tag_uq"),
    UniqueConstraint("setid", name="pks_peer_setid_uq"),
)

pks_set = Table(
    "pks_set",
    own_metadata,
    Column("setid", Integer, primary_key=True, autoincrement=False),
    # NULL: the set keeps the global default while another column is overridden (0002)
    Column("algorithm", String(32), nullable=True),
    Column("ruri_host", String(16), nullable=False, server_default="keep"),
)

pks_ban = Table(
    "pks_ban",
    own_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("address", String(64), nullable=False),  # an IP or a CIDR, as written canonically
    Column("reason", String(255), nullable=False, server_default=""),
    Column("created", BigInteger, nullable=False, server_default="0"),  # Unix seconds
    Column("expires", BigInteger, nullable=True),  # Unix seconds; NULL: never
    UniqueConstraint("address", name="pks_ban_address_uq"),
)

pks_block = Table(
    "pks_block",
    own_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prefix", String(32), nullable=False),  # digits, optionally a leading +
    Column("tag", String(64), nullable=True),  # NULL: every peer; else that peer's tag
    Column("reason", String(255), nullable=False, server_default=""),
)


def _time() -> DateTime:
    """A UTC time without zone, to the millisecond (MySQL's DATETIME has none by default)."""
    return DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")


pks_cdr = Table(
    "pks_cdr",
    own_metadata,
    # one row per call attempt, written by the call records' database sink (pks.cdr, 0004);
    # the fields of pks.cdr.fields.FIELDS, times in UTC
    Column("id", String(36), primary_key=True, autoincrement=False),  # the record's UUID
    Column("call_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),  # answered | failed | cancelled | rejected
    Column("start_time", _time(), nullable=False),
    Column("answer_time", _time(), nullable=True),
    Column("end_time", _time(), nullable=True),
    Column("duration", Float, nullable=False, server_default="0"),  # seconds answered
    Column("setup", Float, nullable=True),  # seconds from the INVITE to the answer or final
    Column("caller", String(64), nullable=True),
    Column("called", String(64), nullable=True),
    Column("peer", String(64), nullable=True),
    Column("source", String(64), nullable=False),
    Column("setid", Integer, nullable=True),
    Column("gateway", String(192), nullable=True),
    Column("attempts", Text, nullable=True),  # JSON: [{"gateway", "code", "at"}, ...]
    Column("code", Integer, nullable=True),
    Column("reason", String(128), nullable=True),
    Column("ended_by", String(16), nullable=True),
    Column("from_tag", String(128), nullable=True),
    Column("to_tag", String(128), nullable=True),
    Column("worker", Integer, nullable=True),
    Index("pks_cdr_start_idx", "start_time"),
    Index("pks_cdr_callid_idx", "call_id"),
    Index("pks_cdr_peer_idx", "peer", "start_time"),
)
