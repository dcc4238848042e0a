"""Beside the data path: a dry run of :func:`pks.route.route` that says *why*.

``explain(snapshot, ip, port, number)`` answers the operator's question "where does a call
from this address to this number go, and because of which rows?": the ``address`` row that
authorized the source (group and tag), every dialplan id tried with the rule that matched
(and the rules whose expression matches but whose ``match_len`` rules them out — the classic
mistake), the dispatcher set and its gateways in the order a call would try them.

The decision is the router's own: :func:`~pks.route.route` runs on a copy of the snapshot
whose round-robin counters are a copy too, so an explanation never moves a counter — the
next real call still goes where the explanation said. Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pks.route import DEFAULT_POLICY, DPIDS_BY_GROUP, Policy, route
from pks.route.authorize import AddressEntry, authorize
from pks.route.decision import Drop, Forward, Reply, Target
from pks.route.dispatch import FLAG_DISABLED, FLAG_INACTIVE, RoundRobin
from pks.route.fnmatch import compile_fnmatch
from pks.route.fraud import Limits
from pks.route.lookup import MATCH_EQUAL, MATCH_REGEX, DialplanRule, lookup
from pks.route.regex import PcreError, byte_view, compile_pcre
from pks.route.snapshot import Snapshot

__all__ = ["Explanation", "address_entry", "explain"]

_KINDS = {1: "customer", 2: "provider"}


@dataclass(frozen=True, slots=True)
class Explanation:
    """What the router would do, and the rows that decided it (JSON-friendly via as_dict)."""

    source: str
    number: str
    verdict: str  # forward | reply | drop
    reason: str
    address: dict[str, Any] | None
    dialplan: tuple[dict[str, Any], ...]
    setid: int | None
    gateways: tuple[dict[str, Any], ...]
    skipped: tuple[dict[str, Any], ...]
    # stage 7: blocked prefix, calls per second, international calls (None: no such rule)
    fraud: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def explain(
    snapshot: Snapshot,
    ip: str,
    port: int,
    number: str,
    is_usable: Callable[[Target], bool] | None = None,
    policy: Policy = DEFAULT_POLICY,
    peer_calls: Callable[[str], int] | None = None,
    method: str = "INVITE",
    limits: Limits | None = None,
    now: float = 0.0,
) -> Explanation:
    """Explain the routing of a new ``method`` request from ``ip``:``port`` to R-URI user
    ``number``, with the proxy's ``policy`` and its peers' open calls (``peer_calls``) when
    it runs, and its counters of calls per second (``limits`` at ``now``, copied: an
    explanation counts no call)."""
    copy = dataclasses.replace(snapshot, rr=_copy_rr(snapshot.rr))
    twin = None if limits is None else limits.copy()
    decision = route(
        copy, ip, port, number or None, is_usable, None, method, policy, peer_calls, twin, now
    )
    peer = authorize(snapshot, ip, port)
    fraud = _fraud(snapshot, None if peer is None else peer.tag, number, limits, now)
    entry = address_entry(snapshot, ip, port) if peer is not None else None
    address = None
    if peer is not None:
        address = {
            "id": None if entry is None else entry.id,
            "grp": peer.grp,
            "kind": _KINDS.get(peer.grp),
            "tag": peer.tag,
            "match": None if entry is None else _entry_text(entry),
        }
    dialplan = tuple(
        _dpid_step(snapshot, dpid, number)
        for dpid in (DPIDS_BY_GROUP.get(peer.grp, ()) if peer is not None and number else ())
    )
    if isinstance(decision, Forward):
        return Explanation(
            source=f"{ip}:{port}",
            number=number,
            verdict="forward",
            reason=f"dpid {decision.dpid} rule {decision.rule_id} → set {decision.setid}",
            address=address,
            dialplan=_until_match(dialplan),
            setid=decision.setid,
            gateways=tuple(_target(t, i) for i, t in enumerate(decision.targets)),
            skipped=_skipped(snapshot, decision.setid, decision.targets),
            fraud=fraud,
        )
    verdict = "reply" if isinstance(decision, Reply) else "drop"
    reason = (
        f"{decision.code} {decision.reason}: {decision.log}"
        if isinstance(decision, Reply)
        else decision.log
        if isinstance(decision, Drop)
        else ""
    )
    matched = next((s["rule"] for s in dialplan if s["rule"] is not None), None)
    setid = _set_of(matched)
    return Explanation(
        source=f"{ip}:{port}",
        number=number,
        verdict=verdict,
        reason=reason,
        address=address,
        dialplan=_until_match(dialplan),
        setid=setid,
        gateways=(),
        skipped=_skipped(snapshot, setid, ()) if setid is not None else (),
        fraud=fraud,
    )


def _fraud(
    snapshot: Snapshot, tag: str | None, number: str, limits: Limits | None, now: float
) -> dict[str, Any] | None:
    """Stage 7's rules for this peer and number, and the counters when the proxy runs."""
    rules = snapshot.fraud
    if rules is None:
        return None
    blocked = None if rules.blocks is None else rules.blocks.find(tag, number)
    out: dict[str, Any] = {"blocked": None if blocked is None else blocked.as_dict()}
    second = None if limits is None else limits.second(now)
    if tag is not None:
        most = rules.peer_cps.get(tag)
        out["max_cps"] = most
        if most is not None and limits is not None and second == limits.peers.second:
            out["calls_this_second"] = limits.peers.counts().get(tag, 0)
        intl = rules.intl_limits.get(tag)
        out["max_intl_calls"] = intl
        if intl is not None and limits is not None:
            out["international"] = limits.international(number)
            if limits.intl_calls is not None:
                out["intl_calls"] = limits.intl_calls(tag)
    return out


def _copy_rr(rr: RoundRobin) -> RoundRobin:
    copy = RoundRobin()
    copy.last = dict(rr.last)
    copy.credit = {
        setid: [credit[i] for i in range(len(credit))] for setid, credit in rr.credit.items()
    }
    copy.rng.setstate(rr.rng.getstate())
    return copy


def _set_of(rule: dict[str, Any] | None) -> int | None:
    attrs = None if rule is None else rule["attrs"]
    return int(attrs) if isinstance(attrs, str) and attrs.lstrip("-").isdigit() else None


def _until_match(steps: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
    """The dpids actually tried: up to and including the first one with a match."""
    out = []
    for step in steps:
        out.append(step)
        if step["rule"] is not None:
            break
    return tuple(out)


def address_entry(snapshot: Snapshot, ip: str, port: int) -> AddressEntry | None:
    """The loaded row that :func:`authorize` used (same precedence, §1.3)."""
    try:
        source = ipaddress.ip_address(ip.strip("[]"))
    except ValueError:
        return None
    for entry in reversed(snapshot.address_dump()):  # the row loaded last wins
        if entry.ip == str(source) and entry.port in (0, port):
            return entry
    for entry in snapshot.subnet_dump():
        net = ipaddress.ip_network(f"{entry.ip}/{entry.mask}", strict=False)
        if source.version == net.version and source in net and entry.port in (0, port):
            return entry
    return None


def _entry_text(entry: AddressEntry) -> str:
    return f"{entry.ip}/{entry.mask} port {entry.port or 'any'}"


def _rule(rule: DialplanRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "dpid": rule.dpid,
        "pr": rule.pr,
        "match_op": rule.match_op,
        "match_exp": rule.match_exp,
        "match_len": rule.match_len,
        "attrs": rule.attrs,
    }


def _dpid_step(snapshot: Snapshot, dpid: int, number: str) -> dict[str, Any]:
    match = lookup(snapshot, dpid, number)
    rules = snapshot.dialplan_dump(dpid) or ()
    rule = next((r for r in rules if match is not None and r.id == match.rule_id), None)
    size = len(byte_view(number))
    ruled_out = [
        _rule(r)
        for r in rules
        if r.match_len not in (0, size)
        and (rule is None or r.id != rule.id)
        and _expression_matches(r, number)
    ]
    return {
        "dpid": dpid,
        "known": snapshot.dialplan_dump(dpid) is not None,
        "rule": None if rule is None else _rule(rule),
        "ruled_out_by_match_len": ruled_out,
    }


def _expression_matches(rule: DialplanRule, number: str) -> bool:
    subject = byte_view(number)
    if rule.match_op == MATCH_EQUAL:
        return rule.match_exp == number
    if rule.match_op == MATCH_REGEX:
        try:
            return compile_pcre(rule.match_exp).pattern.search(subject) is not None
        except PcreError:
            return False
    return compile_fnmatch(rule.match_exp).pattern.fullmatch(subject) is not None


def _target(target: Target, position: int) -> dict[str, Any]:
    return {
        "order": position + 1,
        "uri": target.uri,
        "host": target.host,
        "port": target.port,
        "transport": target.proto.value,
        "socket": target.socket_name,
        "ruri_host": target.ruri_host or None,  # None: the caller's R-URI host is kept
    }


def _skipped(
    snapshot: Snapshot, setid: int | None, chosen: tuple[Target, ...]
) -> tuple[dict[str, Any], ...]:
    """The set's destinations a call would not try, and why."""
    dset = None if setid is None else snapshot.dispatcher.sets.get(setid)
    if dset is None:
        return ()
    out = []
    for dest in dset.destinations:
        if dest.target in chosen:
            continue
        if dest.flags & FLAG_DISABLED:
            why = "disabled (flags)"
        elif dest.flags & FLAG_INACTIVE:
            why = "inactive (flags)"
        else:
            why = "not usable now (run-time state)"
        out.append({"uri": dest.uri, "priority": dest.priority, "why": why})
    return tuple(out)
