"""Step ⑤: route one new request (no To-tag) — authorize ─► policy ─► look up ─► dispatch ─►
limits.

The only place the stage order is written (compiled with the core: it runs for every call),
and so the one place that decides a new request's fate: ``pks route explain`` runs the same
function. Pure functions over an immutable :class:`~pks.route.snapshot.Snapshot` (built off
the data path from the database); the only state touched is the snapshot's round-robin
counters.

1. authorize (``address``): the packet source IP/port must match a row, else **Drop**
   (no reply, like the seed's ``allow_source_address_group`` failure);
2. method policy: out of dialog only the methods of ``Policy.methods`` are routed
   (``PKS_ALLOWED_METHODS``, INVITE alone by default), else **405 Method Not Allowed**;
3. the R-URI user part must be present and at most ``Policy.max_user_length`` characters
   long (``PKS_MAX_USER_LENGTH``), else **484 Address Incomplete**;
4. look up (``dialplan``): providers (grp 2) use dpid 1 (DIDs) only; customers (grp 1) use
   dpid 1 first — on-net calls stay inside — then dpid 2 (routes to providers); any other
   group is not routable (**Drop**); no rule → **404**; the rule's attrs must be a set id,
   else **404**;
5. dispatch (``dispatcher``): round-robin in that set, the others as failover; an unknown
   set → **404**; a set whose gateways are all inactive, disabled or full → **503** at once
   (no timer wait);
6. limits: a source peer already at its ``max_calls`` (``pks_peer``) gets **503** for a new
   INVITE;
7. fraud and floods (:mod:`pks.route.fraud`, rules compiled in ``Snapshot.fraud``, None when
   there are none): a number starting with a blocked prefix (``pks_block``, every peer's or
   the source peer's) gets **403** (checked before the dialplan, right after 3); for a new
   INVITE, a peer at its ``max_intl_calls`` calling abroad gets **403**, a peer over its
   ``max_cps`` **503 with Retry-After** (``Limits``: the counters, given with ``now``), and
   gateways over their ``maxcps=`` are skipped (all of them: **503 with Retry-After**);
   else **Forward**.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from pks.net import Address
from pks.route.authorize import authorize
from pks.route.decision import Drop, Forward, Peer, Reply, Target
from pks.route.dispatch import HashKey, select
from pks.route.fraud import FraudRules, Limits
from pks.route.lookup import lookup
from pks.route.snapshot import Snapshot

__all__ = [
    "DPIDS_BY_GROUP",
    "DPID_DID",
    "DPID_OFFNET",
    "GROUP_CUSTOMER",
    "GROUP_PROVIDER",
    "Policy",
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


@dataclass(frozen=True, slots=True)
class Policy:
    """The operator's rules for new requests (``PKS_ALLOWED_METHODS``,
    ``PKS_MAX_USER_LENGTH``). CANCEL and ACK never reach ``route()``: they belong to a
    transaction or a dialog."""

    methods: frozenset[str] = frozenset({"INVITE"})
    max_user_length: int = 64

    @property
    def allow(self) -> str:
        """The Allow header value of a 405 (RFC 3261 §21.4.6)."""
        return ", ".join(sorted(self.methods | {"ACK", "CANCEL", "BYE"}))


DEFAULT_POLICY: Final = Policy()

#: Calls a source peer has open now (``CallTable.peer_count``), for ``max_calls``.
PeerCalls = Callable[[str], int]


def route(
    snapshot: Snapshot,
    src_ip: str,
    src_port: int,
    ruri_user: str | None,
    is_usable: Callable[[Target], bool] | None = None,
    hash_key: HashKey | None = None,
    method: str = "INVITE",
    policy: Policy = DEFAULT_POLICY,
    peer_calls: PeerCalls | None = None,
    limits: Limits | None = None,
    now: float = 0.0,
) -> Forward | Reply | Drop:
    """Decide what to do with a new ``method`` request from ``src_ip``:``src_port`` for
    ``ruri_user``.

    ``ruri_user`` is the R-URI user part as written (not %-decoded), None when absent.
    ``is_usable`` lets runtime gateway state exclude targets and ``hash_key`` gives the
    request values hashing algorithms use (see ``dispatch.select``). ``peer_calls`` gives a
    peer's open calls for its ``max_calls`` limit (None: no limit applied); ``limits`` the
    counters of calls per second and international calls, at ``now`` (None: not applied).
    """
    peer = authorize(snapshot, src_ip, src_port)
    if peer is None:
        return Drop(f"unknown source {Address(src_ip, src_port)}")
    fraud = snapshot.fraud
    refused = _policy(policy, peer, method, ruri_user) or _blocked(fraud, peer, ruri_user)
    if refused is not None or ruri_user is None:  # (None is refused: this is for mypy)
        return refused or Drop("no user part")
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
        why = f"no usable gateway in set {setid}"
        return Reply(503, "Service Unavailable", why, stat="refused_no_gateway")
    full = _at_limit(snapshot, peer, method, peer_calls)
    if full is not None or fraud is None or limits is None or method != "INVITE":
        return full or Forward(peer, match.dpid, match.rule_id, setid, targets)
    checked = _rates(fraud, limits, peer, ruri_user, targets, now)
    if isinstance(checked, Reply):
        return checked
    return Forward(peer, match.dpid, match.rule_id, setid, checked[0], checked[1])


def _policy(policy: Policy, peer: Peer, method: str, user: str | None) -> Reply | None:
    """Stages 2 and 3: the method, then the R-URI user part."""
    if method not in policy.methods:
        why = f"{method} out of dialog is not allowed"
        return Reply(405, "Method Not Allowed", why, policy.allow)
    if not user:
        return Reply(484, "Address Incomplete", f"no user part in the R-URI from {_who(peer)}")
    if len(user) > policy.max_user_length:
        why = f"R-URI user part of {len(user)} characters (limit {policy.max_user_length})"
        return Reply(484, "Address Incomplete", why)
    return None


def _at_limit(
    snapshot: Snapshot, peer: Peer, method: str, peer_calls: PeerCalls | None
) -> Reply | None:
    """Stage 6: a peer at its ``max_calls`` gets 503 for a new call."""
    tag = peer.tag
    if peer_calls is None or tag is None or method != "INVITE":
        return None
    most = snapshot.peer_limits.get(tag)
    if most is not None and peer_calls(tag) >= most:
        why = f"peer {tag} is at its {most} calls"
        return Reply(503, "Service Unavailable", why, stat="refused_max_calls")
    return None


def _blocked(fraud: FraudRules | None, peer: Peer, user: str | None) -> Reply | None:
    """Stage 7: a number starting with a blocked prefix gets 403."""
    if fraud is None or fraud.blocks is None or user is None:
        return None
    rule = fraud.blocks.find(peer.tag, user)
    if rule is None:
        return None
    whose = "every peer" if rule.tag is None else f"peer {rule.tag}"
    why = f"{user} starts with {rule.prefix}, blocked for {whose}: {rule.reason or 'no reason'}"
    return Reply(403, "Destination Blocked", why, stat="refused_blocked")


def _rates(
    fraud: FraudRules,
    limits: Limits,
    peer: Peer,
    user: str,
    targets: tuple[Target, ...],
    now: float,
) -> Reply | tuple[tuple[Target, ...], bool]:
    """Stage 7 for a new call: international calls, then calls per second of the peer and
    of its gateways. Returns the gateways left and whether the call is international."""
    tag = peer.tag
    second = limits.second(now)
    intl = False
    if tag is not None:
        most = fraud.intl_limits.get(tag)
        if most is not None and limits.international(user):
            intl = True
            count = limits.intl_calls
            if count is not None and count(tag) >= most:
                why = f"peer {tag} has its {most} international calls open"
                return Reply(403, "International Calls Limit", why, stat="refused_max_intl")
        most = fraud.peer_cps.get(tag)
        if most is not None and not limits.peers.take(tag, most, second):
            why = f"peer {tag} is over its {most} calls per second"
            return Reply(503, "Service Unavailable", why, stat="refused_max_cps", retry_after=1)
    if fraud.gateway_cps:
        rates = limits.gateways
        caps = fraud.gateway_cps
        if any(
            (m := caps.get(t.uri)) is not None and rates.full(t.uri, m, second) for t in targets
        ):
            targets = tuple(
                t
                for t in targets
                if (m := caps.get(t.uri)) is None or not rates.full(t.uri, m, second)
            )
            if not targets:
                why = "every gateway of the set is over its maxcps="
                return Reply(
                    503, "Service Unavailable", why, stat="refused_gateway_cps", retry_after=1
                )
        first = targets[0].uri
        most = caps.get(first)
        if most is not None:
            rates.take(first, most, second)
    return targets, intl


def _who(peer: Peer) -> str:
    return f"grp {peer.grp} tag {peer.tag}" if peer.tag is not None else f"grp {peer.grp}"
