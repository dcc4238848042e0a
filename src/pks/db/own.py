"""Beside the data path: pks's own tables, next to Kamailio's (never altering those).

* ``pks_peer`` — customers and providers as first-class objects. A peer *owns* Kamailio rows
  by value, not by foreign key, so that hand-edited tables stay usable: the ``address`` rows
  whose ``tag`` equals ``pks_peer.tag``, the ``dispatcher`` rows whose ``setid`` equals
  ``pks_peer.setid``, and the ``dialplan`` rows of dpid 1 (customers' DIDs) or dpid 2
  (providers' routes) whose ``attrs`` is that set id. ``max_calls`` limits concurrent calls
  from the peer's sources (NULL or 0 = unlimited).
* ``pks_set`` — per dispatcher set overrides: the distribution algorithm (a name or Kamailio
  number from :mod:`pks.route.algorithms`).

Versioned with migrations (``pks db upgrade``); a Kamailio database without them is read as
"no peers, no overrides".
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint

__all__ = ["own_metadata", "pks_peer", "pks_set"]

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
    UniqueConstraint("name", name="pks_peer_name_uq"),
    UniqueConstraint("tag", name="pks_peer_tag_uq"),
    UniqueConstraint("setid", name="pks_peer_setid_uq"),
)

pks_set = Table(
    "pks_set",
    own_metadata,
    Column("setid", Integer, primary_key=True, autoincrement=False),
    Column("algorithm", String(32), nullable=False),
)
