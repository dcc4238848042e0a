"""Keep :class:`~pks.dns.cache.DnsCache` warm for the names of the live snapshot (async task).

``prime(snapshot)`` resolves the names a new snapshot uses before it goes live; ``run()``
wakes every second, re-resolves entries whose TTL ends within ``ahead`` seconds, failed
entries whose negative TTL ran out, and names the proxy asked for and did not find. A name
that starts or stops resolving is logged once per transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from pks.dns.cache import DnsCache, DnsKey, dns_key
from pks.dns.resolve import Resolver, resolve_all
from pks.route.snapshot import Snapshot

__all__ = ["DnsRefresher", "names_of"]

log = logging.getLogger("pks.dns")


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
    ) -> None:
        self.cache = cache
        self.resolver = resolver
        self.clock = clock
        self.current = current
        self.ahead = ahead
        self._failing: dict[DnsKey, str] = {}
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
            key for key in keys
            if (entry := self.cache.get(key)) is None
            or entry.expires - (self.ahead if entry.addresses else 0.0) <= now
        ]  # fmt: skip
        self.cache.retain(keys)
        self.cache.wanted &= keys
        await self._resolve(due)

    async def _resolve(self, keys: list[DnsKey]) -> None:
        if not keys:
            return
        results = await resolve_all(self.resolver, keys, self.clock())
        for key, result in zip(keys, results, strict=True):
            self.cache.put(key, result)
            name = f"{key[0]} ({key[3].upper()}, {key[2]})"
            if result.error is not None:
                if self._failing.get(key) is None:
                    log.warning("DNS: %s does not resolve: %s", name, result.error)
                self._failing[key] = result.error
            else:
                if self._failing.pop(key, None) is not None:
                    log.warning("DNS: %s resolves again", name)
                addresses = ", ".join(f"{h}:{p}" for h, p in result.addresses)
                log.debug("DNS: %s → %s", name, addresses)

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
