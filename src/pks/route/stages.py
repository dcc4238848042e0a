"""Step ⑤: route one new request (no To-tag) — authorize ─► look up ─► dispatch.

The only place the stage order is written (compiled with the core: it runs for every call).
Pure functions over an immutable :class:`~pks.route.snapshot.Snapshot` (built off the data
path from the database); the only state touched is the snapshot's round-robin counters.

1. authorize (``address``): the packet source IP/port must match a row, else **Drop**
   (no reply, like the seed's ``allow_source_address_group`` failure);
2. the R-URI user part must be present, else **484 Address Incomplete**;
3. look up (``dialplan``): providers (grp 2) use dpid 1 (DIDs) only; customers (grp 1) use
   dpid 1 first — on-net calls stay inside — then dpid 2 (routes to providers); any other
   group is not routable (**Drop**); no rule → **404**; the rule's attrs must be a set id,
   else **404**;
4. dispatch (``dispatcher``): round-robin in that set, the others as failover; an unknown
   set → **404**; a set whose gateways are all inactive, disabled or full → **503** at once
   (no timer wait); else **Forward**.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from pks.net import Address
from pks.route.authorize import authorize
from pks.route.decision import Drop, Forward, Peer, Reply, Target
from pks.route.dispatch import HashKey, select
from pks.route.lookup import lookup
from pks.route.snapshot import Snapshot

__all__ = [
    "DPIDS_BY_GROUP",
    "DPID_DID",
    "DPID_OFFNET",
    "GROUP_CUSTOMER",
    "GROUP_PROVIDER",
    "route",
]

GROUP_CUSTOMER: Final = 1
GROUP_PROVIDER: Final = 2
DPID_DID: Final = 1
DPID_OFFNET: Final = 2

DPIDS_BY_GROUP: Final[dict[int, tuple[int, ...]]] = {
    GROUP_CUSTOMER: (DPID_DID, DPID_OFFNET),
    GROUP_PROVIDER: (DPID_DID,),
}
"""Which dialplan ids a source group may use, in the order they are tried."""


def route(
    snapshot: Snapshot,
    src_ip: str,
    src_port: int,
    ruri_user: str | None,
    is_usable: Callable[[Target], bool] | None = None,
    hash_key: HashKey | None = None,
) -> Forward | Reply | Drop:
    """Decide what to do with a new request from ``src_ip``:``src_port`` for ``ruri_user``.

    ``ruri_user`` is the R-URI user part as written (not %-decoded), None when absent.
    ``is_usable`` lets runtime gateway state exclude targets and ``hash_key`` gives the
    request values hashing algorithms use (see ``dispatch.select``).
    """
    peer = authorize(snapshot, src_ip, src_port)
    if peer is None:
        return Drop(f"unknown source {Address(src_ip, src_port)}")
    if not ruri_user:
        return Reply(484, "Address Incomplete", f"no user part in the R-URI from {_who(peer)}")
    dpids = DPIDS_BY_GROUP.get(peer.grp)
    if dpids is None:
        return Drop(f"group {peer.grp} is not routable (source {Address(src_ip, src_port)})")
    match = None
    for dpid in dpids:
        match = lookup(snapshot, dpid, ruri_user)
        if match is not None:
            break
    if match is None:
        tried = " then ".join(str(dpid) for dpid in dpids)
        return Reply(404, "Not Found", f"no rule for {ruri_user} in dpid {tried}")
    setid = match.set_id
    if setid is None:
        return Reply(
            404, "Not Found", f"rule {match.rule_id} attrs {match.attrs!r} is not a set id"
        )
    targets = select(snapshot, setid, is_usable, hash_key)
    if targets is None:
        return Reply(404, "Not Found", f"set {setid} does not exist")
    if not targets:
        return Reply(503, "Service Unavailable", f"no usable gateway in set {setid}")
    return Forward(peer, match.dpid, match.rule_id, setid, targets)


def _who(peer: Peer) -> str:
    return f"grp {peer.grp} tag {peer.tag}" if peer.tag is not None else f"grp {peer.grp}"
