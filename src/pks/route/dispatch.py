"""Step ⑤c: dispatcher set id → the gateways to try, round-robin first (Kamailio dispatcher
``ds_select_dst(set, 4)`` with ``flags=2`` failover list).

Load rules (§3.2–3.5): ``destination`` is a SIP URI ``sip:[user@]host[:port][;params]``; a value
that does not parse, is longer than 4 characters and does not start with ``sip:`` is
retried with ``sip:`` prepended (``10.0.0.1:5060`` → ``sip:10.0.0.1:5060``). The host is an IP
literal or a name resolved once, at build time. ``;transport=udp|tcp`` picks the protocol
(default UDP, port 5060). We are strict where Kamailio skips a row: an unparsable URI, an
unresolvable name, a transport we do not serve (``sips:``, tls, sctp, ws) or an unknown
socket name rejects the whole build, naming the row. attrs are ``name=value;…`` with
case-insensitive names; the send socket comes from ``sockname=``, else ``socketname=`` (the
seed's spelling).

Set order (§3.4): priority descending, equal priorities in reverse load order. Selection
(§3.6 alg 4): per set a counter ``last`` (0 after every build); the chosen entry is the first
usable one at or after ``last``, then ``last = chosen + 1``. The result is the chosen gateway
followed by the other usable ones in set order, wrapping around (the failover list, §3.7).
Entries with the inactive (1) or disabled (4) flag bit are never usable; ``is_usable`` lets
runtime state (health probing) exclude more.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pks.net import Proto
from pks.route.decision import Target
from pks.route.rows import DispatcherRow

if TYPE_CHECKING:
    from pks.route.snapshot import Snapshot

__all__ = [
    "FLAG_DISABLED",
    "FLAG_INACTIVE",
    "FLAG_PROBING",
    "FLAG_TRYING",
    "Destination",
    "DispatcherSet",
    "DispatcherTable",
    "Resolver",
    "RoundRobin",
    "compile_dispatcher",
    "parse_attrs",
    "select",
]

FLAG_INACTIVE = 1
FLAG_TRYING = 2
FLAG_DISABLED = 4
FLAG_PROBING = 8
_SKIP = FLAG_INACTIVE | FLAG_DISABLED

Resolver = Callable[[str], str]
"""Host name → IP literal; raises OSError (or ValueError) when the name does not resolve."""

_URI = re.compile(
    r"""(?P<scheme>sips?):
        (?:(?P<user>[^@;?\[\]]*)@)?
        (?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9.])?)
        (?::(?P<port>[0-9]{1,5}))?
        (?P<params>(?:;[^;?]*)*)
        (?:\?.*)?""",
    re.ASCII | re.IGNORECASE | re.VERBOSE | re.DOTALL,
)
_HOSTNAME = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9-]+\.?", re.A)
_TRANSPORTS = {"udp": Proto.UDP, "tcp": Proto.TCP}
_MAX_HOST = 254


@dataclass(frozen=True, slots=True)
class Destination:
    """One loaded ``dispatcher`` row, for dumps (``dispatcher.list``) and health probing."""

    id: int
    setid: int
    uri: str
    flags: int
    priority: int
    attrs: str
    attr_map: tuple[tuple[str, str], ...]
    description: str
    target: Target


@dataclass(frozen=True, slots=True)
class DispatcherSet:
    """A set in selection order; ``usable`` = indexes whose DB flags allow selection."""

    setid: int
    destinations: tuple[Destination, ...]
    targets: tuple[Target, ...]
    usable: tuple[int, ...]
    usable_targets: tuple[Target, ...]
    selectable: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class DispatcherTable:
    """The compiled ``dispatcher`` table, by set id."""

    sets: dict[int, DispatcherSet]

    @property
    def destination_count(self) -> int:
        return sum(len(s.destinations) for s in self.sets.values())


class RoundRobin:
    """Kamailio's per-set ``last`` counters; mutable, owned by one snapshot (reset on reload)."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: dict[int, int] = {}


def select(
    snapshot: Snapshot, setid: int, is_usable: Callable[[Target], bool] | None = None
) -> tuple[Target, ...] | None:
    """Round-robin pick in set ``setid``: (chosen, failover…), or None if nothing is usable."""
    dset = snapshot.dispatcher.sets.get(setid)
    if dset is None:
        return None
    size = len(dset.targets)
    last = snapshot.rr.last
    start = last.get(setid, 0)
    if is_usable is None:
        usable = dset.usable
        if not usable:
            return None
        pos = bisect.bisect_left(usable, start)
        if pos == len(usable):
            pos = 0
        last[setid] = (usable[pos] + 1) % size
        ring = dset.usable_targets
        return ring[pos:] + ring[:pos] if pos else ring
    targets, selectable = dset.targets, dset.selectable
    order = [
        index
        for index in (*range(start, size), *range(start))
        if selectable[index] and is_usable(targets[index])
    ]
    if not order:
        return None
    last[setid] = (order[0] + 1) % size
    return tuple(targets[index] for index in order)


def compile_dispatcher(
    rows: Iterable[DispatcherRow], resolve: Resolver, sockets: Collection[str] | None = None
) -> tuple[DispatcherTable, list[str]]:
    """Validate and resolve ``dispatcher`` rows (load order); returns the table and errors.

    ``sockets`` is the set of our socket names; when given, an unknown socket name is an error.
    """
    errors: list[str] = []
    resolved: dict[str, str] = {}
    members: dict[int, list[tuple[int, Destination]]] = {}
    for position, row in enumerate(rows):
        destination = _destination(row, resolve, resolved, sockets, errors)
        if destination is not None:
            members.setdefault(row.setid, []).append((position, destination))
    sets: dict[int, DispatcherSet] = {}
    for setid in sorted(members):
        ordered = sorted(members[setid], key=lambda pair: (-pair[1].priority, -pair[0]))
        destinations = tuple(d for _, d in ordered)
        selectable = tuple(not d.flags & _SKIP for d in destinations)
        usable = tuple(i for i, ok in enumerate(selectable) if ok)
        targets = tuple(d.target for d in destinations)
        sets[setid] = DispatcherSet(
            setid=setid,
            destinations=destinations,
            targets=targets,
            usable=usable,
            usable_targets=tuple(targets[i] for i in usable),
            selectable=selectable,
        )
    return DispatcherTable(sets), errors


def parse_attrs(attrs: str) -> tuple[tuple[str, str], ...]:
    """``name=value;…`` → ((lower-case name, value), …); bare names get ''."""
    pairs: list[tuple[str, str]] = []
    for part in attrs.split(";"):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name:
            pairs.append((name, value.strip()))
    return tuple(pairs)


def _destination(  # noqa: C901 - one check per load rule
    row: DispatcherRow,
    resolve: Resolver,
    resolved: dict[str, str],
    sockets: Collection[str] | None,
    errors: list[str],
) -> Destination | None:
    where = f"dispatcher id {row.id}"
    uri = row.destination
    match = _URI.fullmatch(uri)
    if match is None and len(uri) > 4 and not uri.startswith("sip:"):
        uri = "sip:" + uri
        match = _URI.fullmatch(uri)
    if match is None:
        errors.append(f"{where}: destination {row.destination!r} is not a SIP URI")
        return None
    if match["scheme"].lower() == "sips":
        errors.append(f"{where}: destination {uri!r}: sips needs TLS, which pks does not serve")
        return None
    params = dict(parse_attrs(match["params"]))
    transport = params.get("transport", "udp").lower()
    proto = _TRANSPORTS.get(transport)
    if proto is None:
        errors.append(f"{where}: destination {uri!r}: transport {transport!r} is not udp or tcp")
        return None
    port = int(match["port"] or 5060)
    if not 0 < port <= 65535:
        errors.append(f"{where}: destination {uri!r}: port {port} is not in 1..65535")
        return None
    host = match["host"]
    if host.startswith("["):
        try:
            address = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            errors.append(f"{where}: destination {uri!r}: {host} is not an IPv6 address")
            return None
    else:
        try:
            address = str(ipaddress.IPv4Address(host))
        except ValueError:
            if len(host) > _MAX_HOST or not _HOSTNAME.fullmatch(host):
                errors.append(f"{where}: destination {uri!r}: {host!r} is not a host name")
                return None
            if host not in resolved:
                try:
                    resolved[host] = resolve(host)
                except (OSError, ValueError) as exc:
                    errors.append(f"{where}: destination {uri!r}: cannot resolve {host}: {exc}")
                    return None
            address = resolved[host]
    attr_map = parse_attrs(row.attrs)
    names = dict(attr_map)
    socket_name = names.get("sockname") or names.get("socketname") or None
    if socket_name is not None and sockets is not None and socket_name not in sockets:
        known = ", ".join(sorted(sockets)) or "none"
        errors.append(f"{where}: socket name {socket_name!r} is not ours (we have: {known})")
        return None
    target = Target(uri, address, port, proto, socket_name, row.setid, row.attrs)
    return Destination(
        id=row.id,
        setid=row.setid,
        uri=uri,
        flags=row.flags,
        priority=row.priority,
        attrs=row.attrs,
        attr_map=attr_map,
        description=row.description,
        target=target,
    )
