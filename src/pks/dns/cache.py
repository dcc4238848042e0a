"""Resolved gateway names, read by the proxy core (sans-IO: no sockets, no clock).

A :class:`Resolution` is what one RFC 3263 lookup gave for a (name, port, transport, kind)
key: the addresses to try, in order (SRV priority, then weight; every SRV target is a
failover candidate), and until when they are valid. Failures are cached too (no
addresses), for a short while, so that a dead name costs one lookup, not one per call.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pks.route.decision import Target

__all__ = ["DnsCache", "DnsKey", "Resolution", "SrvRecord", "dns_key", "order_srv"]

DnsKey = tuple[str, int, str, str]
"""(host name, port, transport, "a" | "srv")."""


def dns_key(target: Target) -> DnsKey:
    return (target.host, target.port, target.proto.value, target.dns)


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class Resolution:
    """Addresses (ip, port) in the order to try them; empty when the name failed.

    ``stale_since`` is set on an answer kept past its TTL because every lookup since has
    failed (RFC 8767 serve-stale, :class:`pks.dns.refresh.DnsRefresher`): when it expired."""

    addresses: tuple[tuple[str, int], ...]
    expires: float
    error: str | None = None
    stale_since: float | None = None


def order_srv(records: Sequence[SrvRecord], rng: random.Random) -> list[SrvRecord]:
    """RFC 2782 order: priority ascending; inside a priority, weighted random selection."""
    ordered: list[SrvRecord] = []
    for priority in sorted({r.priority for r in records}):
        pool = [r for r in records if r.priority == priority]
        pool.sort(key=lambda r: r.weight)  # zero weights first, as RFC 2782 suggests
        while pool:
            total = sum(r.weight for r in pool)
            pick = 0
            if total:
                threshold = rng.randint(0, total)
                running = 0
                for index, record in enumerate(pool):
                    running += record.weight
                    if running >= threshold:
                        pick = index
                        break
            ordered.append(pool.pop(pick))
    return ordered


class DnsCache:
    """Resolutions by key, plus the keys the proxy asked for and did not find."""

    __slots__ = ("_entries", "hosts", "version", "wanted")

    def __init__(self) -> None:
        self._entries: dict[DnsKey, Resolution] = {}
        self.wanted: set[DnsKey] = set()
        self.hosts: frozenset[str] = frozenset()  # every address a name resolved to
        self.version = 0  # changes with ``hosts``: what the proxy's source gate remembers

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, key: DnsKey, resolution: Resolution) -> None:
        self._entries[key] = resolution
        self.wanted.discard(key)
        self._rehost()

    def get(self, key: DnsKey) -> Resolution | None:
        return self._entries.get(key)

    def items(self) -> Iterable[tuple[DnsKey, Resolution]]:
        return self._entries.items()

    def retain(self, keys: set[DnsKey]) -> None:
        """Forget names no longer used by the live snapshot."""
        for key in [k for k in self._entries if k not in keys]:
            del self._entries[key]
        self._rehost()

    def _rehost(self) -> None:
        hosts = frozenset(h for r in self._entries.values() for h, _ in r.addresses)
        if hosts != self.hosts:
            self.hosts = hosts
            self.version += 1

    def expand(self, target: Target, now: float) -> tuple[Target, ...]:
        """The addresses of a named ``target`` as targets, in failover order; () if none.

        An unknown or expired name is recorded in :attr:`wanted` for the resolver.
        """
        key = dns_key(target)
        entry = self._entries.get(key)
        if entry is None or entry.expires <= now:
            self.wanted.add(key)
            return ()
        return tuple(target.at(host, port) for host, port in entry.addresses)
