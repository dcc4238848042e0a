"""Step ⑤c: dispatcher set id → the gateways to try, round-robin first (Kamailio dispatcher
``ds_select_dst(set, 4)`` with ``flags=2`` failover list).

Load rules (§3.2–3.5): ``destination`` is a SIP URI ``sip:[user@]host[:port][;params]``; a value
that does not parse, is longer than 4 characters and does not start with ``sip:`` is
retried with ``sip:`` prepended (``10.0.0.1:5060`` → ``sip:10.0.0.1:5060``). The host is an IP
literal or a host name; names are resolved at call time per RFC 3263 (``pks.dns``: SRV when
no port is given, then A/AAAA; cached with their TTL), so a name that does not resolve fails
over like a dead gateway instead of failing the load (Kamailio resolves A records once, at
load). ``;transport=udp|tcp`` picks the protocol (default UDP, port 5060). We are strict
where Kamailio skips a row: an unparsable URI, a transport we do not serve (``sips:``, tls,
sctp, ws) or an unknown socket name rejects the whole build, naming the row. attrs are
``name=value;…`` with case-insensitive names; the send socket comes from ``sockname=``,
else ``socketname=`` (the seed's spelling).

Set order (§3.4): priority descending, equal priorities in reverse load order. Selection
(§3.6 alg 4): per set a counter ``last`` (0 after every build); the chosen entry is the first
usable one at or after ``last``, then ``last = chosen + 1``. The result is the chosen gateway
followed by the other usable ones in set order, wrapping around (the failover list, §3.7).
Entries with the inactive (1) or disabled (4) flag bit are never usable; ``is_usable`` lets
runtime state (health probing) exclude more.

R-URI host (``pks_set.ruri_host``): ``keep`` (the default, ``ds_select_dst``) sends the
caller's R-URI unchanged; ``gateway`` (``ds_select_domain``) replaces its host[:port] by the
chosen gateway's and its ``transport`` parameter by the gateway's, because a real user agent
answers 404 unless the R-URI's user is one of its accounts *at its own domain*, and many
carriers refuse an R-URI whose host is not theirs. The replacement is precomputed into each
``Target`` here.
"""

from __future__ import annotations

import bisect
import ipaddress
import random
import re
from collections.abc import Callable, Collection, Iterable, MutableMapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from pks.net import Proto
from pks.route.algorithms import DEFAULT_ALGORITHM, parse_algorithm
from pks.route.decision import Target
from pks.route.rows import DispatcherRow, SetRow

if TYPE_CHECKING:
    from pks.route.snapshot import Snapshot

__all__ = [
    "FLAG_DISABLED",
    "FLAG_INACTIVE",
    "FLAG_PROBING",
    "FLAG_TRYING",
    "RURI_HOST_MODES",
    "Destination",
    "DispatcherSet",
    "DispatcherTable",
    "RoundRobin",
    "compile_dispatcher",
    "ds_hash",
    "parse_attrs",
    "parse_ruri_host",
    "select",
]

FLAG_INACTIVE = 1
FLAG_TRYING = 2
FLAG_DISABLED = 4
FLAG_PROBING = 8
_SKIP = FLAG_INACTIVE | FLAG_DISABLED

HashKey = Callable[[str], str | None]
"""Algorithm name → the request value it hashes (Call-ID, From user, R-URI user)."""

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

RURI_HOST_MODES = ("keep", "gateway")
"""``pks_set.ruri_host`` values: keep the caller's R-URI host, or write the gateway's."""


def parse_ruri_host(value: str) -> str:
    """A ``pks_set.ruri_host`` value (case and spaces ignored); ValueError naming the choices."""
    mode = value.strip().lower()
    if mode not in RURI_HOST_MODES:
        raise ValueError(
            f"ruri_host {value!r} is not one of: keep (the caller's R-URI host, like"
            " ds_select_dst), gateway (the gateway's host and port, like ds_select_domain)"
        )
    return mode


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
    algorithm: str = DEFAULT_ALGORITHM
    weights: tuple[int, ...] = ()  # weight= per destination (alg 9), 0 = no share
    rweights: tuple[int, ...] = ()  # rweight= per destination (alg 11)
    ruri_host: str = "keep"  # pks_set.ruri_host, for dumps (its Targets carry the effect)


@dataclass(frozen=True, slots=True)
class DispatcherTable:
    """The compiled ``dispatcher`` table, by set id."""

    sets: dict[int, DispatcherSet]

    @property
    def destination_count(self) -> int:
        return sum(len(s.destinations) for s in self.sets.values())


class Credits(Protocol):
    """One set's weighted credits: a list, or shared slots (worker processes)."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> int: ...
    def __setitem__(self, index: int, value: int) -> None: ...


class RoundRobin:
    """Selection state, mutable, owned by one snapshot (reset on reload): Kamailio's per-set
    ``last`` counters (round-robin), smooth weighted round-robin credits, and the random
    generator of ``random``.

    Worker processes replace ``last`` and ``credit`` by shared mappings and set ``guard``, a
    lock held around each selection that reads and writes them (``pks.workers.shared``)."""

    __slots__ = ("credit", "guard", "last", "rng")

    def __init__(self, seed: int | None = None) -> None:
        self.last: MutableMapping[int, int] = {}
        self.credit: MutableMapping[int, Credits] = {}
        self.rng = random.Random(seed)
        self.guard: AbstractContextManager[None] | None = None


def select(
    snapshot: Snapshot,
    setid: int,
    is_usable: Callable[[Target], bool] | None = None,
    hash_key: HashKey | None = None,
) -> tuple[Target, ...] | None:
    """Pick in set ``setid`` by its algorithm: (chosen, failover…).

    None when the set does not exist, ``()`` when it has no usable destination. The failover
    order is always the other usable destinations in set order, after the chosen one.
    """
    dset = snapshot.dispatcher.sets.get(setid)
    if dset is None:
        return None
    alg = dset.algorithm
    rr = snapshot.rr
    if rr.guard is not None and alg in ("round-robin", "weighted", "relative-weight"):
        with rr.guard:
            return _select(rr, dset, alg, is_usable, hash_key)
    return _select(rr, dset, alg, is_usable, hash_key)


def _select(
    rr: RoundRobin,
    dset: DispatcherSet,
    alg: str,
    is_usable: Callable[[Target], bool] | None,
    hash_key: HashKey | None,
) -> tuple[Target, ...]:
    if alg == "round-robin":
        return _round_robin(rr, dset, is_usable)
    size = len(dset.targets)
    ok = (
        dset.selectable
        if is_usable is None
        else [dset.selectable[i] and is_usable(dset.targets[i]) for i in range(size)]
    )
    if not any(ok):
        return ()
    if alg == "priority":
        start = 0
    elif alg == "random":
        start = rr.rng.randrange(size)
    elif alg in ("weighted", "relative-weight"):
        start = _smooth_weighted(rr, dset, ok)
    else:  # hash-callid, hash-from, hash-ruri
        key = hash_key(alg) if hash_key is not None else None
        start = ds_hash((key or "").encode()) % size
    order = [i for i in (*range(start, size), *range(start)) if ok[i]]
    return tuple(dset.targets[i] for i in order)


def _round_robin(
    rr: RoundRobin, dset: DispatcherSet, is_usable: Callable[[Target], bool] | None
) -> tuple[Target, ...]:
    """Kamailio alg 4: the first usable at or after ``last``; ``last`` moves past it."""
    setid = dset.setid
    size = len(dset.targets)
    last = rr.last
    start = last.get(setid, 0)
    if is_usable is None:
        usable = dset.usable
        if not usable:
            return ()
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
        return ()
    last[setid] = (order[0] + 1) % size
    return tuple(targets[index] for index in order)


def _smooth_weighted(rr: RoundRobin, dset: DispatcherSet, ok: Sequence[bool]) -> int:
    """Smooth weighted round-robin (nginx): proportional even over a few calls.

    ``weighted`` (alg 9) shares over every destination by ``weight=``; a share that falls on
    an unusable one goes to the next usable one in set order (as Kamailio walks on).
    ``relative-weight`` (alg 11) shares over the usable destinations only, by ``rweight=``.
    With no weight at all, the first usable destination (priority order) is chosen.
    """
    relative = dset.algorithm == "relative-weight"
    weights = dset.rweights if relative else dset.weights
    live = [w if (ok[i] or not relative) else 0 for i, w in enumerate(weights)]
    total = sum(live)
    if total == 0:
        return 0
    credit = rr.credit.setdefault(dset.setid, [0] * len(weights))
    best = -1
    for i, weight in enumerate(live):
        if weight:
            credit[i] += weight
            if best < 0 or credit[i] > credit[best]:
                best = i
    credit[best] -= total
    return best


def _sc(byte: int) -> int:
    return byte - 256 if byte > 127 else byte  # C char is signed on x86


def _hash_part(data: bytes) -> int:
    h, i, n = 0, 0, len(data)
    while i + 4 <= n:
        v = (
            (_sc(data[i]) << 24)
            + (_sc(data[i + 1]) << 16)
            + (_sc(data[i + 2]) << 8)
            + _sc(data[i + 3])
        ) & 0xFFFFFFFF
        h = (h + (v ^ (v >> 3))) & 0xFFFFFFFF
        i += 4
    v = 0
    while i < n:
        v = ((v << 8) + _sc(data[i])) & 0xFFFFFFFF
        i += 1
    return (h + (v ^ (v >> 3))) & 0xFFFFFFFF


def ds_hash(first: bytes | None, second: bytes | None = None) -> int:
    """Kamailio dispatcher's ``ds_get_hash`` (so a hash picks what Kamailio would pick)."""
    h = 0
    for part in (first, second):
        if part is not None:
            h = (h + _hash_part(part)) & 0xFFFFFFFF
    h = (h + (h >> 11) + (h >> 13) + (h >> 23)) & 0xFFFFFFFF
    return h or 1


def compile_dispatcher(
    rows: Iterable[DispatcherRow],
    sockets: Collection[str] | None = None,
    set_rows: Iterable[SetRow] = (),
    algorithm: str = DEFAULT_ALGORITHM,
) -> tuple[DispatcherTable, list[str]]:
    """Validate ``dispatcher`` rows (load order); returns the table and errors.

    ``sockets`` is the set of our socket names; when given, an unknown socket name is an error.
    ``set_rows`` override ``algorithm`` (the global default) and the R-URI host per set.
    """
    errors: list[str] = []
    algorithms: dict[int, str] = {}
    rewrite: set[int] = set()
    for set_row in set_rows:
        try:
            if set_row.algorithm is not None:
                algorithms[set_row.setid] = parse_algorithm(set_row.algorithm)
            if parse_ruri_host(set_row.ruri_host) == "gateway":
                rewrite.add(set_row.setid)
        except ValueError as exc:
            errors.append(f"pks_set setid {set_row.setid}: {exc}")
    members: dict[int, list[tuple[int, Destination]]] = {}
    for position, row in enumerate(rows):
        destination = _destination(row, sockets, errors, row.setid in rewrite)
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
            algorithm=algorithms.get(setid, algorithm),
            weights=tuple(_weight(d, "weight") for d in destinations),
            rweights=tuple(_weight(d, "rweight") for d in destinations),
            ruri_host="gateway" if setid in rewrite else "keep",
        )
    return DispatcherTable(sets), errors


def _weight(dest: Destination, name: str) -> int:
    """``weight=``/``rweight=`` as Kamailio reads it: 1–100, anything else 0 (no share)."""
    value = dict(dest.attr_map).get(name, "")
    return int(value) if value.isdigit() and 1 <= int(value) <= 100 else 0


def parse_attrs(attrs: str) -> tuple[tuple[str, str], ...]:
    """``name=value;…`` → ((lower-case name, value), …); bare names get ''."""
    pairs: list[tuple[str, str]] = []
    for part in attrs.split(";"):
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if name:
            pairs.append((name, value.strip()))
    return tuple(pairs)


def _destination(
    row: DispatcherRow,
    sockets: Collection[str] | None,
    errors: list[str],
    rewrite_ruri: bool = False,
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
    dns = ""
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
            address = host.lower().rstrip(".")
            dns = "a" if match["port"] else "srv"
    attr_map = parse_attrs(row.attrs)
    names = dict(attr_map)
    socket_name = names.get("sockname") or names.get("socketname") or None
    if socket_name is not None and sockets is not None and socket_name not in sockets:
        known = ", ".join(sorted(sockets)) or "none"
        errors.append(f"{where}: socket name {socket_name!r} is not ours (we have: {known})")
        return None
    ruri_host = ruri_transport = ""
    if rewrite_ruri:  # the URI's own spelling (a name stays a name, [v6] keeps brackets)
        ruri_host = host + (f":{match['port']}" if match["port"] else "")
        ruri_transport = params.get("transport", "").lower()
    target = Target(
        uri, address, port, proto, socket_name, row.setid, row.attrs, dns, ruri_host, ruri_transport
    )
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
