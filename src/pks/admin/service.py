"""Beside the data path: what the admin routes share — the instance, and one write at a time.

The admin API sees the running proxy only as an :class:`Instance`, the protocol below that
``pks.server.Server`` satisfies: the server imports this package to serve it, never the
other way round. Blocking provisioning calls run in a worker thread (``asyncio.to_thread``);
a write is committed there, then the routing snapshot is rebuilt and swapped
(``Instance.reload``), so the change is live when the HTTP answer leaves. Writes are
serialised by one lock, so two API clients cannot both validate against the same "before".
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from pks.route.snapshot import Snapshot

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from pks.cluster import FloodSync
    from pks.config import Settings
    from pks.metrics.figures import Figures
    from pks.proxy import Proxy
    from pks.reload import ReloadResult

__all__ = ["AdminService", "Instance", "NotReady"]


class Instance(Protocol):
    """What the admin API needs of a running instance, and nothing more."""

    @property
    def settings(self) -> Settings:
        """``PKS_ADMIN_*``: where to listen, the token, the accepted host names."""

    @property
    def started_at(self) -> float:
        """Wall-clock time of the start (uptime)."""

    @property
    def engine(self) -> Engine:
        """The routing tables' database (provisioning reads and writes)."""

    @property
    def proxy(self) -> Proxy | None:
        """The live core (sockets, gateway states); None before it is built."""

    @property
    def snapshot(self) -> Snapshot | None:
        """The live routing tables; None before the first load."""

    @property
    def last_reload(self) -> ReloadResult | None: ...

    @property
    def floods(self) -> FloodSync | None:
        """Bans' expiry and their sharing through Redis (pks.cluster); None before start."""

    async def reload(self) -> ReloadResult:
        """Rebuild the routing snapshot from the database (every worker's)."""

    def database_status(self) -> dict[str, Any]:
        """The ``database`` object of ``/status``."""

    async def transaction_stats(self) -> tuple[Counter[str], int]:
        """Transaction counters and current transactions, for the whole instance."""

    async def limit_counts(self) -> dict[str, object] | None:
        """Calls counted against limits, for the whole instance (None: not running yet)."""

    async def workers_status(self) -> list[dict[str, Any]] | None:
        """Per worker figures (None: one process)."""

    async def metrics_figures(self) -> Figures:
        """Everything ``GET /metrics`` shows, for the whole instance."""


class NotReady(RuntimeError):
    """The proxy has no routing snapshot (yet)."""


class AdminService:
    """The running instance as the admin API sees it."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self._write_lock = asyncio.Lock()

    @property
    def sockets(self) -> tuple[str, ...] | None:
        """Our socket names, so that a gateway naming another socket is refused."""
        proxy = self.instance.proxy
        return None if proxy is None else tuple(sorted({s.name for s in proxy.sockets}))

    @property
    def snapshot(self) -> Snapshot:
        snap = self.instance.snapshot
        if snap is None:
            raise NotReady("routing tables are not loaded")
        return snap

    async def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking read of the database in a worker thread."""
        return await asyncio.to_thread(fn, self.instance.engine, *args, **kwargs)

    async def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run a checked write in a thread, then reload; the answer says if it is live."""
        async with self._write_lock:
            data = await asyncio.to_thread(
                fn, self.instance.engine, *args, sockets=self.sockets, **kwargs
            )
            result = await self.instance.reload()
        return {"data": data, "applied": result.ok, "reload": result.message}
