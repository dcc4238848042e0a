"""Keep :class:`~pks.dns.cache.DnsCache` warm for the names of the live snapshot (async task).

``prime(snapshot)`` resolves the names a new snapshot uses before it goes live; ``run()``
wakes every second, re-resolves entries whose TTL ends within ``ahead`` seconds, failed
entries whose negative TTL ran out, and names the proxy asked for and did not find. A name
that starts or stops resolving is logged once per transition.

Serve-stale (RFC 8767): a lookup that fails (timeout, SERVFAIL, NXDOMAIN alike) does not
replace a good answer; the answer is kept, ``STALE_TTL`` seconds at a time (the lookup is
tried again then), for at most ``max_stale`` seconds past its TTL — so a DNS outage does not
take named gateways out, while a name really gone stops being used after that bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from pks.dns.cache import DnsCache, DnsKey, Resolution, dns_key
from pks.dns.resolve import Resolver, resolve_all
from pks.route.snapshot import Snapshot

__all__ = ["STALE_TTL", "DnsRefresher", "names_of"]

log = logging.getLogger("pks.dns")

STALE_TTL = 30.0
"""Seconds a stale answer is used before the next lookup (RFC 8767 §4's recommendation)."""


def names_of(snapshot: Snapshot | None) -> set[DnsKey]:
    """Every name lookup the snapshot's gateways need."""
    if snapshot is None:
        return set()
    return {dns_key(t) for s in snapshot.dispatcher.sets.values() for t in s.targets if t.dns}


class DnsRefresher:
    def __init__(
        self,
        cache: DnsCache,
        resolver: Resolver,
        clock: Callable[[], float],
        current: Callable[[], Snapshot | None],
        ahead: float = 2.0,
        max_stale: float = 86400.0,
    ) -> None:
        self.cache = cache
        self.resolver = resolver
        self.clock = clock
        self.current = current
        self.ahead = ahead
        self.max_stale = max_stale
        self._failing: dict[DnsKey, str] = {}
        self._serving_stale: set[DnsKey] = set()  # served stale (RFC 8767) while lookups fail
        self._names: tuple[Snapshot | None, set[DnsKey]] = (None, set())
        self._task: asyncio.Task[None] | None = None

    async def prime(self, snapshot: Snapshot | None) -> None:
        """Resolve what ``snapshot`` needs and the cache lacks (before it goes live)."""
        keys = names_of(snapshot)
        now = self.clock()
        missing = [k for k in keys if (e := self.cache.get(k)) is None or e.expires <= now]
        await self._resolve(missing)

    def _keys(self) -> set[DnsKey]:
        """The names of the live snapshot, walked once per snapshot (not every second)."""
        snapshot = self.current()
        if snapshot is not self._names[0]:
            self._names = (snapshot, names_of(snapshot))
        return self._names[1]

    async def refresh_once(self) -> None:
        keys = self._keys()
        if not keys and not len(self.cache):
            return
        now = self.clock()
        due = [
            key
            for key in keys
            if (entry := self.cache.get(key)) is None
            or entry.expires - (self.ahead if entry.addresses else 0.0) <= now
        ]
        self.cache.retain(keys)
        self.cache.wanted &= keys
        await self._resolve(due)

    async def _resolve(self, keys: list[DnsKey]) -> None:
        if not keys:
            return
        now = self.clock()
        results = await resolve_all(self.resolver, keys, now)
        for key, result in zip(keys, results, strict=True):
            name = f"{key[0]} ({key[3].upper()}, {key[2]})"
            stale = self._stale_answer(key, now) if result.error is not None else None
            if stale is not None:
                self.cache.put(key, stale)
                if key not in self._serving_stale:
                    self._serving_stale.add(key)
                    log.warning(
                        "DNS: %s does not resolve: %s; its last answer is used (stale) for up"
                        " to %g s past its TTL",
                        name,
                        result.error,
                        self.max_stale,
                    )
                continue
            self.cache.put(key, result)
            if result.error is not None:
                if self._failing.get(key) is None or key in self._serving_stale:
                    self._serving_stale.discard(key)
                    log.warning("DNS: %s does not resolve: %s", name, result.error)
                self._failing[key] = result.error
            else:
                if self._failing.pop(key, None) is not None or key in self._serving_stale:
                    self._serving_stale.discard(key)
                    log.warning("DNS: %s resolves again", name)
                addresses = ", ".join(f"{h}:{p}" for h, p in result.addresses)
                log.debug("DNS: %s → %s", name, addresses)

    def _stale_answer(self, key: DnsKey, now: float) -> Resolution | None:
        """The entry to keep for ``key`` while its lookups fail: its last good answer, for
        ``STALE_TTL`` more seconds, unless it is ``max_stale`` past its TTL (None: none)."""
        old = self.cache.get(key)
        if old is None or not old.addresses or self.max_stale <= 0:
            return None
        since = old.stale_since if old.stale_since is not None else old.expires
        if now >= since + self.max_stale:
            return None
        expires = min(max(now, since) + STALE_TTL, since + self.max_stale)
        return Resolution(old.addresses, expires, None, since)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.refresh_once()
            except Exception:
                log.exception("DNS refresh failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
