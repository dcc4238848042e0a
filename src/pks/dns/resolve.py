"""The I/O edge of :mod:`pks.dns`: RFC 3263 lookups with dnspython's asyncio resolver.

For a gateway URI without a port (``sip:gw.example.net``): SRV ``_sip._udp.gw.example.net``
(``_sip._tcp`` for ``;transport=tcp``), each target in RFC 2782 order then resolved to its
A and AAAA records; no SRV record → A/AAAA of the name itself on port 5060. With a port:
A/AAAA only. NAPTR is not consulted: the transport is the URI's (UDP by default), which is
what RFC 3263 §4.1 does when a transport is given. The TTL kept is the smallest of the
answers used, bounded to [``min_ttl``, ``max_ttl``]; a failure is kept ``negative_ttl``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from pks.dns.cache import DnsKey, Resolution, SrvRecord, order_srv
from pks.net import Address

__all__ = ["Resolver", "make_resolver"]

log = logging.getLogger("pks.dns")


def make_resolver(
    servers: Sequence[Address] = (), timeout: float = 2.0
) -> dns.asyncresolver.Resolver:
    """The system resolver, or one asking ``servers`` (e.g. a test DNS on loopback)."""
    if not servers:
        resolver = dns.asyncresolver.Resolver()
    else:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [s.host for s in servers]
        resolver.nameserver_ports = {s.host: s.port for s in servers}
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


class Resolver:
    """RFC 3263 lookups returning :class:`Resolution` values (``expires`` on ``clock``)."""

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        *,
        min_ttl: float = 1.0,
        max_ttl: float = 3600.0,
        negative_ttl: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        self.resolver = resolver
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self.rng = rng or random.Random()

    async def resolve(self, key: DnsKey, now: float) -> Resolution:
        name, port, transport, kind = key
        try:
            addresses, ttl = await self._lookup(name, port, transport, kind)
        except (dns.exception.DNSException, OSError) as exc:
            return Resolution((), now + self.negative_ttl, f"{type(exc).__name__}: {exc}")
        if not addresses:
            return Resolution((), now + self.negative_ttl, f"{name}: no address")
        ttl = min(max(ttl, self.min_ttl), self.max_ttl)
        return Resolution(tuple(addresses), now + ttl)

    async def _lookup(
        self, name: str, port: int, transport: str, kind: str
    ) -> tuple[list[tuple[str, int]], float]:
        ttls: list[float] = []
        if kind == "srv":
            records = await self._srv(f"_sip._{transport}.{name}", ttls)
            if records:
                found: list[tuple[str, int]] = []
                for record in order_srv(records, self.rng):
                    try:
                        hosts = await self._hosts(record.target, ttls)
                    except dns.exception.DNSException as exc:
                        log.info(
                            "SRV target %s of %s does not resolve: %s", record.target, name, exc
                        )
                        continue
                    found.extend((host, record.port) for host in hosts)
                return found, min(ttls, default=self.min_ttl)
        hosts = await self._hosts(name, ttls)
        return [(host, port) for host in hosts], min(ttls, default=self.min_ttl)

    async def _srv(self, qname: str, ttls: list[float]) -> list[SrvRecord]:
        try:
            answer = await self.resolver.resolve(qname, "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        ttls.append(answer.rrset.ttl if answer.rrset is not None else self.min_ttl)
        return [
            SrvRecord(r.priority, r.weight, r.port, r.target.to_text(omit_final_dot=True))
            for r in answer
            if r.target.to_text() != "."
        ]

    async def _hosts(self, name: str, ttls: list[float]) -> list[str]:
        """A then AAAA addresses of ``name`` (IPv4 first, as our sockets are mostly IPv4)."""
        hosts: list[str] = []
        failures: list[dns.exception.DNSException] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = await self.resolver.resolve(name, rdtype)
            except (
                dns.resolver.NXDOMAIN,
                dns.resolver.NoAnswer,
                dns.resolver.NoNameservers,
                dns.exception.Timeout,
            ) as exc:
                failures.append(exc)
                continue
            if answer.rrset is not None:
                ttls.append(answer.rrset.ttl)
            hosts.extend(r.address for r in answer)
        if not hosts and failures:
            raise failures[0]
        return hosts


async def resolve_all(resolver: Resolver, keys: list[DnsKey], now: float) -> list[Resolution]:
    """Resolve many keys concurrently."""
    return list(await asyncio.gather(*(resolver.resolve(key, now) for key in keys)))
