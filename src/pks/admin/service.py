"""Beside the data path: what the admin routes share — the server, and one write at a time.

Blocking provisioning calls run in a worker thread (``asyncio.to_thread``); a write is
committed there, then the routing snapshot is rebuilt and swapped (``Server.reload``), so
the change is live when the HTTP answer leaves. Writes are serialised by one lock, so two
API clients cannot both validate against the same "before".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pks.route.snapshot import Snapshot

if TYPE_CHECKING:
    from pks.server import Server

__all__ = ["AdminService", "NotReady"]


class NotReady(RuntimeError):
    """The proxy has no routing snapshot (yet)."""


class AdminService:
    """The running server as the admin API sees it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._write_lock = asyncio.Lock()

    @property
    def sockets(self) -> tuple[str, ...] | None:
        """Our socket names, so that a gateway naming another socket is refused."""
        proxy = self.server.proxy
        return None if proxy is None else tuple(sorted({s.name for s in proxy.sockets}))

    @property
    def snapshot(self) -> Snapshot:
        snap = self.server.snapshot
        if snap is None:
            raise NotReady("routing tables are not loaded")
        return snap

    async def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking read of the database in a worker thread."""
        return await asyncio.to_thread(fn, self.server.engine, *args, **kwargs)

    async def write(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run a checked write in a thread, then reload; the answer says if it is live."""
        async with self._write_lock:
            data = await asyncio.to_thread(
                fn, self.server.engine, *args, sockets=self.sockets, **kwargs
            )
            result = await self.server.reload()
        return {"data": data, "applied": result.ok, "reload": result.message}
