"""Step ⑤: route one new request (no To-tag) — authorize ─► look up ─► dispatch.

The package's public surface; ``route()``, where the stage order is written, and the stages
themselves are in :mod:`pks.route.stages`.
"""

from __future__ import annotations

from pks.route.authorize import authorize
from pks.route.decision import Decision, Drop, Forward, Peer, Reply, Target
from pks.route.dispatch import select
from pks.route.lookup import DialplanMatch, lookup, translate
from pks.route.rows import AddressRow, DialplanRow, DispatcherRow, TableRows
from pks.route.snapshot import Snapshot, SnapshotError, build_snapshot
from pks.route.stages import (
    DEFAULT_POLICY,
    DPID_DID,
    DPID_OFFNET,
    DPIDS_BY_GROUP,
    GROUP_CUSTOMER,
    GROUP_PROVIDER,
    Policy,
    route,
)

__all__ = [
    "DEFAULT_POLICY",
    "DPIDS_BY_GROUP",
    "DPID_DID",
    "DPID_OFFNET",
    "GROUP_CUSTOMER",
    "GROUP_PROVIDER",
    "AddressRow",
    "Decision",
    "DialplanMatch",
    "DialplanRow",
    "DispatcherRow",
    "Drop",
    "Forward",
    "Peer",
    "Policy",
    "Reply",
    "Snapshot",
    "SnapshotError",
    "TableRows",
    "Target",
    "authorize",
    "build_snapshot",
    "lookup",
    "route",
    "select",
    "translate",
]
