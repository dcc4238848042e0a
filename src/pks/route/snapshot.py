"""Beside the data path: table rows → one immutable, validated routing :class:`Snapshot`.

``build_snapshot`` runs off the event loop (large tables take a while) whenever the
tables are (re)loaded; the server then swaps its snapshot reference in one assignment, so
in-flight requests keep the snapshot they started with. Validation follows Kamailio's load
rules per table (see :mod:`~pks.route.authorize`, :mod:`~pks.route.lookup`,
:mod:`~pks.route.dispatch`) with one difference: every bad row of every table is reported
at once, in one :class:`SnapshotError`, and nothing is built — the old snapshot stays.

A snapshot owns one mutable thing, the dispatcher round-robin counters (:class:`RoundRobin`):
a reload builds a new snapshot and so resets them, like Kamailio's ``dispatcher.reload``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from pks.route.algorithms import DEFAULT_ALGORITHM
from pks.route.authorize import AddressEntry, AddressTable, compile_address
from pks.route.dispatch import (
    DispatcherSet,
    DispatcherTable,
    RoundRobin,
    compile_dispatcher,
)
from pks.route.fraud import FraudRules, compile_rules, parse_ban_address
from pks.route.lookup import DialplanRule, DialplanTable, compile_dialplan
from pks.route.rows import BanRow, TableRows

__all__ = ["Snapshot", "SnapshotError", "SnapshotSummary", "build_snapshot"]


class SnapshotError(ValueError):
    """The rows cannot be routed with; ``problems`` lists one line per bad row and reason."""

    def __init__(self, problems: Sequence[str] | str) -> None:
        lines = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("\n".join(lines))
        self.problems = lines


@dataclass(frozen=True, slots=True)
class SnapshotSummary:
    """Counts for status output; ``built_at`` is the ``now`` the build was given, if any."""

    built_at: float | None
    addresses: int
    subnets: int
    domains: int
    dpids: int
    rules: int
    sets: int
    destinations: int

    def __str__(self) -> str:
        return (
            f"{self.addresses} addresses, {self.subnets} subnets, {self.domains} domains;"
            f" {self.rules} dialplan rules in {self.dpids} dpids;"
            f" {self.destinations} gateways in {self.sets} sets"
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Compiled ``address``, ``dialplan`` and ``dispatcher`` tables, read by ``route()``."""

    address: AddressTable
    dialplan: DialplanTable
    dispatcher: DispatcherTable
    built_at: float | None = None
    peer_limits: dict[str, int] = field(default_factory=dict, compare=False)
    rr: RoundRobin = field(default_factory=RoundRobin, compare=False, repr=False)
    # the gateways' IP literals (names resolve at run time: pks.dns), for the source gate
    gateway_hosts: frozenset[str] = field(default_factory=frozenset, compare=False)
    # blocked prefixes, calls per second, international calls (None: no such rule)
    fraud: FraudRules | None = field(default=None, compare=False)
    # pks_ban rows, addresses in canonical form (the source gate applies them)
    bans: tuple[BanRow, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.gateway_hosts:
            hosts = frozenset(
                d.target.host
                for s in self.dispatcher.sets.values()
                for d in s.destinations
                if not d.target.dns
            )
            object.__setattr__(self, "gateway_hosts", hosts)

    def summary(self) -> SnapshotSummary:
        """Table counts and build time, for status output and logs."""
        return SnapshotSummary(
            built_at=self.built_at,
            addresses=len(self.address.exact_entries),
            subnets=len(self.address.subnet_entries),
            domains=len(self.address.domain_entries),
            dpids=len(self.dialplan.dpids),
            rules=self.dialplan.rule_count,
            sets=len(self.dispatcher.sets),
            destinations=self.dispatcher.destination_count,
        )

    # -- dumps for the admin RPCs (typed values; the RPC layer formats them) ----------------

    def address_dump(self) -> tuple[AddressEntry, ...]:
        """Exact (/32, /128) entries in load order (the last of duplicates wins)."""
        return self.address.exact_entries

    def subnet_dump(self) -> tuple[AddressEntry, ...]:
        """Subnet entries in matching order (``grp`` ascending, then load order)."""
        return self.address.subnet_entries

    def domain_dump(self) -> tuple[AddressEntry, ...]:
        """Host-name entries (never used for source checks)."""
        return self.address.domain_entries

    def dialplan_dpids(self) -> tuple[int, ...]:
        return tuple(sorted(self.dialplan.dpids))

    def dialplan_dump(self, dpid: int) -> tuple[DialplanRule, ...] | None:
        """A dpid's rules in evaluation order, None for an unknown dpid."""
        return self.dialplan.rules(dpid)

    def dispatcher_sets(self) -> tuple[DispatcherSet, ...]:
        """Every set, by set id, each in selection order."""
        return tuple(self.dispatcher.sets.values())


def build_snapshot(
    rows: TableRows,
    *,
    now: float | None = None,
    sockets: Collection[str] | None = None,
    algorithm: str = DEFAULT_ALGORITHM,
) -> Snapshot:
    """Validate and compile every table; raise :class:`SnapshotError` naming each bad row.

    ``now`` is recorded as ``built_at``. ``sockets``, when given, are our
    socket names: a gateway naming another one fails the build. ``algorithm`` is the
    dispatcher algorithm of sets without a ``pks_set`` override.
    """
    address, address_errors = compile_address(rows.address)
    dialplan, dialplan_errors = compile_dialplan(rows.dialplan)
    dispatcher, dispatcher_errors = compile_dispatcher(
        rows.dispatcher, sockets, rows.sets, algorithm
    )
    gateway_cps = {
        d.target.uri: int(value)
        for dset in dispatcher.sets.values()
        for d in dset.destinations
        if (value := dict(d.attr_map).get("maxcps", "")).isdigit() and int(value) > 0
    }
    fraud, fraud_errors = compile_rules(rows.blocks, rows.peers, gateway_cps)
    bans, ban_errors = _bans(rows.bans)
    problems = address_errors + dialplan_errors + dispatcher_errors + fraud_errors + ban_errors
    if problems:
        raise SnapshotError(problems)
    limits = {p.tag: p.max_calls for p in rows.peers if p.max_calls and p.max_calls > 0}
    return Snapshot(
        address, dialplan, dispatcher, built_at=now, peer_limits=limits, fraud=fraud, bans=bans
    )


def _bans(rows: Sequence[BanRow]) -> tuple[tuple[BanRow, ...], list[str]]:
    out: list[BanRow] = []
    problems: list[str] = []
    for row in rows:
        try:
            address = parse_ban_address(row.address)
        except ValueError as exc:
            problems.append(f"pks_ban id {row.id}: {exc}")
            continue
        out.append(BanRow(row.id, address, row.reason, row.created, row.expires))
    return tuple(out), problems
