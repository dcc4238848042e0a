"""Step ⑤a: the packet's source IP and port → the ``address`` row that allows it (Kamailio
permissions ``allow_source_address_group``), or None.

Load rules (permissions 5.6, ``reload_address_db_table``): ``grp`` > 0; IPv4 mask 0..32, IPv6
mask 0..128; mask 0 means a host route (/32, /128), not "any"; an ``ip_addr`` that is not an
IP literal is a domain row, kept for dumps but never used for source checks. Any bad row
rejects the whole table.

Matching (§1.3): exact entries (/32, /128) first — among them the row loaded *last* wins, a
port-specific row only matches its port, port 0 matches any — then subnets by ``grp``
ascending then load order (first match, not longest prefix). Address families never mix
(``::ffff:a.b.c.d`` does not match IPv4 rows). Protocol is not part of the match.

Cost: one dict probe for a source with an exact entry; otherwise one parse of the source
address and a linear walk of precomputed (network, mask) integers.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pks.route.decision import Peer
from pks.route.rows import AddressRow

if TYPE_CHECKING:
    from pks.route.snapshot import Snapshot

__all__ = ["AddressEntry", "AddressTable", "authorize", "compile_address", "known_host"]

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(r"\.".join([_OCTET] * 4))


@dataclass(frozen=True, slots=True)
class AddressEntry:
    """One loaded ``address`` row; ``ip`` is canonical for IP rows, verbatim for domains."""

    id: int
    grp: int
    ip: str
    mask: int
    port: int
    tag: str | None

    @property
    def peer(self) -> Peer:
        return Peer(self.grp, self.tag)


@dataclass(frozen=True, slots=True)
class _Subnet:
    version: int
    network: int
    mask: int
    port: int
    peer: Peer


@dataclass(frozen=True, slots=True)
class AddressTable:
    """The compiled ``address`` table.

    ``exact`` maps a canonical IP to its (port, peer) pairs, newest-loaded first.
    """

    exact: dict[str, tuple[tuple[int, Peer], ...]]
    subnets: tuple[_Subnet, ...]
    exact_entries: tuple[AddressEntry, ...]
    subnet_entries: tuple[AddressEntry, ...]
    domain_entries: tuple[AddressEntry, ...]


def compile_address(rows: Iterable[AddressRow]) -> tuple[AddressTable, list[str]]:
    """Validate and index ``address`` rows (load order); returns the table and the errors."""
    errors: list[str] = []
    exact_entries: list[AddressEntry] = []
    subnet_entries: list[AddressEntry] = []
    domain_entries: list[AddressEntry] = []
    for row in rows:
        where = f"address id {row.id}"
        before = len(errors)
        if row.grp <= 0:
            errors.append(f"{where}: grp {row.grp} must be greater than 0")
        if not 0 <= row.port <= 65535:
            errors.append(f"{where}: port {row.port} is not in 0..65535")
        ip = _parse_ip(row.ip_addr)
        bits = 0 if ip is None else ip.max_prefixlen
        if ip is not None and not 0 <= row.mask <= bits:
            errors.append(f"{where}: mask {row.mask} is not in 0..{bits} for {row.ip_addr}")
        if len(errors) > before:
            continue
        if ip is None:
            domain_entries.append(
                AddressEntry(row.id, row.grp, row.ip_addr, row.mask, row.port, row.tag)
            )
            continue
        mask = row.mask or bits
        entry = AddressEntry(row.id, row.grp, str(ip), mask, row.port, row.tag)
        (exact_entries if mask == bits else subnet_entries).append(entry)
    exact: dict[str, tuple[tuple[int, Peer], ...]] = {}
    for entry in exact_entries:
        exact[entry.ip] = ((entry.port, entry.peer), *exact.get(entry.ip, ()))
    subnet_entries.sort(key=lambda e: e.grp)  # stable: load order kept within a group
    subnets = tuple(_subnet(e) for e in subnet_entries)
    table = AddressTable(
        exact=exact,
        subnets=subnets,
        exact_entries=tuple(exact_entries),
        subnet_entries=tuple(subnet_entries),
        domain_entries=tuple(domain_entries),
    )
    return table, errors


def authorize(snapshot: Snapshot, ip: str, port: int) -> Peer | None:
    """The peer allowed to send from ``ip``:``port`` (§1.3 order), or None."""
    table = snapshot.address
    candidates = table.exact.get(ip)
    if candidates is not None:
        for entry_port, peer in candidates:
            if entry_port == 0 or entry_port == port:
                return peer
        if not table.subnets:
            return None
    version, value, canonical = _address(ip)
    if not version:
        return None
    if candidates is None and canonical != ip:  # another spelling of an exact entry
        for entry_port, peer in table.exact.get(canonical, ()):
            if entry_port == 0 or entry_port == port:
                return peer
    for net in table.subnets:
        if (
            net.version == version
            and value & net.mask == net.network
            and (net.port == 0 or net.port == port)
        ):
            return net.peer
    return None


def known_host(table: AddressTable, ip: str) -> bool:
    """Does any row allow ``ip``, whatever its port? The source gate's question: a stranger
    is dropped before anything of its packet is parsed (docs/security.md)."""
    if ip in table.exact:
        return True
    version, value, canonical = _address(ip)
    if not version:
        return False
    if canonical in table.exact:
        return True
    return any(n.version == version and value & n.mask == n.network for n in table.subnets)


def _address(ip: str) -> tuple[int, int, str]:
    """(IP version, integer value, canonical text) of an address; version 0 if not one.

    Dotted quads as the kernel reports them take a fast path; anything else (IPv6, brackets,
    odd spellings) goes through ``ipaddress``.
    """
    quad = _DOTTED_QUAD.fullmatch(ip)
    if quad is not None:
        a, b, c, d = quad.groups()
        return 4, (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d), ip
    parsed = _parse_ip(ip)
    if parsed is None:
        return 0, 0, ip
    return parsed.version, int(parsed), str(parsed)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An IP literal (IPv6 with or without brackets), or None for a domain name."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _subnet(entry: AddressEntry) -> _Subnet:
    ip = ipaddress.ip_address(entry.ip)
    bits = ip.max_prefixlen
    mask = ((1 << entry.mask) - 1) << (bits - entry.mask)
    return _Subnet(ip.version, int(ip) & mask, mask, entry.port, entry.peer)
