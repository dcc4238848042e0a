"""Beside the data path: the flood and fraud counters' background work, and their sharing
across instances through Redis (``PKS_REDIS_URL``).

The core counts alone, in process (:class:`pks.route.fraud.CallRates`,
:class:`pks.guard.shield.Shield`); this task, on the event loop, does everything else:

* every second, the bans that expired are forgotten (each logged once: ``unban …``);
* with Redis, every ``INTERVAL`` (100 ms), in one pipelined round trip: the calls let through
  since the last push are added to the cluster's count of the current second (``HINCRBY
  pks:cps:<second> p:<tag>|g:<uri> n``, the hash expiring after a minute), the cluster's
  totals are read back and what the *other* instances let through becomes ``others`` in the
  counters (a call is refused when ours + theirs reach the limit); the bans this instance
  decided are written to the ``pks:bans`` hash (address → expiry, reason, instance), and the
  hash is read back: the others' bans join the gate's list.

Redis unreachable: routing goes on with the local counters alone (``others`` forgotten),
the bans already known stay until they expire, one warning is logged, ``/status`` says so
(``floods.cluster``), and a connection is tried again every second; its return is logged.
A cluster's instances must agree on the clock (NTP): the second is Unix time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from pks.guard.shield import NEVER, Ban

if TYPE_CHECKING:
    from pks.proxy import Proxy
    from pks.route.fraud import CallRates

__all__ = ["INTERVAL", "FloodSync"]

log = logging.getLogger("pks.cluster")

INTERVAL = 0.1  # seconds between two exchanges with Redis
SWEEP = 1.0  # seconds between two sweeps of expired bans
RETRY = 1.0  # seconds between two connection attempts while Redis is down
CPS_TTL = 60  # seconds a second's hash is kept (room for a scan by an operator or a test)
TIMEOUT = 0.5  # seconds Redis has to answer


class FloodSync:
    """The background task of one process (``start``/``close``); ``status()`` for /status."""

    def __init__(
        self, proxy: Proxy, redis_url: str | None, name: str | None = None, prefix: str = "pks:"
    ) -> None:
        self.proxy = proxy
        self.bans_key = prefix + "bans"  # address → {expires, reason, by, created}
        self.cps_key = prefix + "cps:"  # + the Unix second: p:<tag>|g:<uri> → calls
        self.redis_url = redis_url
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self._redis: Any = None
        self._task: asyncio.Task[None] | None = None
        self._pending: list[Ban] = []  # bans decided here, not written to Redis yet
        self._lifted: list[str] = []  # bans lifted here (pks ban rm), to delete in Redis
        # per kind ("p:" peers, "g:" gateways): the second last pushed and what was pushed of it
        self._pushed: dict[str, tuple[int, dict[str, int]]] = {"p:": (-1, {}), "g:": (-1, {})}
        self._cluster_bans: dict[str, tuple[float, str]] = {}
        self.reachable: bool | None = None  # None: no Redis configured, or not tried yet
        self.error: str | None = None
        self.since: float | None = None
        self.syncs = 0
        self.failures = 0
        proxy.gate.shield.on_ban = self._decided if redis_url else None

    def _decided(self, ban: Ban) -> None:
        self._pending.append(ban)  # written to Redis by the next exchange

    # ---- life ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self.redis_url:
            import redis.asyncio as aioredis  # only when asked for

            self._redis = aioredis.from_url(
                self.redis_url,
                socket_timeout=TIMEOUT,
                socket_connect_timeout=TIMEOUT,
                decode_responses=True,
            )
        self._task = asyncio.create_task(self._run(), name="pks-floods")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    def lift(self, address: str) -> bool:
        """End an automatic ban here and, with Redis, in the whole cluster."""
        found = self.proxy.gate.shield.lift(address)
        if self._redis is not None:
            self._lifted.append(address)
            found = found or address in self._cluster_bans
        return found

    # ---- the loop -----------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = 0.0
        next_try = 0.0
        while True:
            now = loop.time()
            if now >= next_sweep:
                self.proxy.gate.shield.sweep(now)
                next_sweep = now + SWEEP
            if self._redis is not None and (self.reachable is not False or now >= next_try):
                try:
                    await self._sync()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # redis.ConnectionError, TimeoutError, OSError, ...
                    self._down(exc)
                    next_try = now + RETRY
                else:
                    self._up()
            if self._redis is not None:
                await asyncio.sleep(INTERVAL)
            else:  # alone, nothing to do until the next sweep: no wake-up 10 times a second
                await asyncio.sleep(max(0.0, next_sweep - loop.time()))

    def _up(self) -> None:
        if self.reachable is not True:
            if self.reachable is False:
                log.warning(
                    "Redis reachable again (%s): limits and bans shared again", self.redis_url
                )
            self.since = time.time()
        self.reachable, self.error = True, None
        self.syncs += 1

    def _down(self, exc: BaseException) -> None:
        self.failures += 1
        self.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        if self.reachable is not False:
            log.error(
                "Redis unreachable (%s): %s; limits and bans now counted by this process alone",
                self.redis_url,
                self.error,
            )
            self.reachable, self.since = False, time.time()
        limits = self.proxy.limits
        limits.peers.others_second = limits.gateways.others_second = -1  # ours alone

    async def _sync(self) -> None:
        """One exchange: push our counts and bans, pull the cluster's."""
        limits = self.proxy.limits
        second = int(time.time())
        key = f"{self.cps_key}{second}"
        pipe = self._redis.pipeline(transaction=False)
        for prefix, rates in (("p:", limits.peers), ("g:", limits.gateways)):
            # the counts of the second the calls were let through in: an exchange that comes
            # late (a busy loop) still pushes the second before, under its own key
            at = rates.second
            if at < second - 2:
                continue
            done_at, done = self._pushed[prefix]
            if done_at != at:
                done = {}
                self._pushed[prefix] = (at, done)
            counted = f"{self.cps_key}{at}"
            for name, count in rates.counts().items():
                delta = count - done.get(name, 0)
                if delta > 0:
                    pipe.hincrby(counted, prefix + name, delta)
                    done[name] = count
            if counted != key:
                pipe.expire(counted, CPS_TTL)
        pipe.expire(key, CPS_TTL)
        pending, self._pending = self._pending, []
        for ban in pending:
            pipe.hset(
                self.bans_key,
                ban.address,
                json.dumps(
                    {
                        "expires": ban.expires,
                        "reason": ban.reason,
                        "by": self.name,
                        "created": ban.created,
                    }
                ),
            )
        lifted, self._lifted = self._lifted, []
        for address in lifted:
            pipe.hdel(self.bans_key, address)
        pipe.hgetall(key)
        pipe.hgetall(self.bans_key)
        try:
            *_, totals, bans = await pipe.execute()
        except BaseException:
            self._pending[:0] = pending  # written on the next exchange that works
            self._lifted[:0] = lifted
            raise
        self._others(limits.peers, "p:", totals, second)
        self._others(limits.gateways, "g:", totals, second)
        await self._bans(bans)

    def _others(self, rates: CallRates, prefix: str, totals: dict[str, str], second: int) -> None:
        done_at, done = self._pushed[prefix]
        pushed = done if done_at == second else {}
        others: dict[str, int] = {}
        for field, value in totals.items():
            if field.startswith(prefix):
                name = field[len(prefix) :]
                theirs = int(value) - pushed.get(name, 0)
                if theirs > 0:
                    others[name] = theirs
        rates.others, rates.others_second = others, second

    async def _bans(self, stored: dict[str, str]) -> None:
        wall = time.time()
        seen: dict[str, tuple[float, str]] = {}
        expired = []
        for address, text in stored.items():
            try:
                value = json.loads(text)
                expires = float(value.get("expires") or NEVER)
            except (ValueError, TypeError, AttributeError):
                expires, value = NEVER, {}
            if expires <= wall:
                expired.append(address)
                continue
            if value.get("by") == self.name:
                continue  # our own: already in the gate's list
            reason = f"{value.get('reason', '')} (by {value.get('by', '?')})"
            seen[address] = (expires, reason)
        if expired:
            await self._redis.hdel(self.bans_key, *expired)
        if seen != self._cluster_bans:
            self._cluster_bans = seen
            self.proxy.gate.shield.set_cluster(
                {a: Ban(a, e, r, "cluster") for a, (e, r) in seen.items()}
            )

    # ---- views --------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The ``floods`` object of /status."""
        shield = self.proxy.gate.shield
        cluster: dict[str, Any] = {"redis": None, "mode": "local"}
        if self.redis_url:
            cluster = {
                "redis": _without_password(self.redis_url),
                "mode": "cluster" if self.reachable else "local (Redis unreachable)",
                "reachable": bool(self.reachable),
                "error": self.error,
                "since": None if self.since is None else _iso(self.since),
                "syncs": self.syncs,
                "failures": self.failures,
            }
        return {**shield.figures(), **self.proxy.limits.figures(), "cluster": cluster}


def _without_password(url: str) -> str:
    head, at, tail = url.rpartition("@")
    if not at:
        return url
    scheme, _, _ = head.partition("://")
    return f"{scheme}://***@{tail}"


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when)) if math.isfinite(when) else ""
