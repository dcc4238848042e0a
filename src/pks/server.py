"""The I/O spine: load the routing snapshot, open the sockets, drive the sans-IO ``Proxy``.

Start-up: settings → database (schema created when missing) → snapshot built off the event
loop → transport bound → admin API → ``pks: ready``. Every message goes transport →
``Proxy.receive`` → ``Send`` effects → transport; one ``loop.call_at`` is kept armed at the
proxy's next deadline. ``reload()`` (SIGHUP, admin API) reads the tables and builds a new
snapshot in a worker thread, then swaps one reference; a failed build leaves the old one live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from dataclasses import dataclass

from pks import __version__
from pks.config import Settings
from pks.db import engine as db_engine
from pks.db.load import load_tables
from pks.net import Inbound, Send, SocketInfo
from pks.proxy import CoreConfig, Proxy
from pks.route.snapshot import Snapshot, SnapshotError, build_snapshot
from pks.transport import Transport

log = logging.getLogger("pks.server")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    ok: bool
    message: str


def core_config(settings: Settings) -> CoreConfig:
    return CoreConfig(
        fr_timer=settings.fr_timer,
        fr_inv_timer=settings.fr_inv_timer,
        failover_codes=settings.failover_code_set,
        reject_unknown=settings.unknown_source == "reject",
        max_forwards=settings.max_forwards,
        server_header=settings.server_header,
        default_socket=settings.default_socket,
    )


def local_addresses() -> tuple[str, ...]:
    """This host's addresses, used to recognise our own Route when bound to 0.0.0.0."""
    found = {"127.0.0.1", "::1"}
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]))
    return tuple(sorted(found))


def _public(sockets: tuple[SocketInfo, ...]) -> tuple[SocketInfo, ...]:
    """Wildcard binds without an advertised address show the host's first address."""
    hosts = [h for h in local_addresses() if ":" not in h and not h.startswith("127.")]
    fallback = hosts[0] if hosts else "127.0.0.1"
    out = []
    for s in sockets:
        if s.host in ("0.0.0.0", "::") and s.advertise_host is None:
            s = SocketInfo(s.name, s.proto, s.host, s.port, fallback, s.advertise_port)
        out.append(s)
    return tuple(out)


class Server:
    """One pks instance: database, snapshot, proxy core, transport and admin API."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started_at = time.time()
        self.engine = db_engine.make_engine(settings.db_url)
        self.proxy: Proxy | None = None
        self.transport: Transport | None = None
        self.last_reload: ReloadResult | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._admin: object | None = None

    @property
    def snapshot(self) -> Snapshot | None:
        return self.proxy.snapshot if self.proxy is not None else None

    async def load_snapshot(self) -> Snapshot:
        """Read the tables and build a snapshot, all off the event loop."""

        def work() -> Snapshot:
            db_engine.ensure_schema(self.engine)
            return build_snapshot(load_tables(self.engine))

        return await asyncio.to_thread(work)

    async def reload(self) -> ReloadResult:
        """Build a new snapshot and swap it in; on any error keep the current one."""
        async with self._reload_lock:
            try:
                snap = await self.load_snapshot()
            except SnapshotError as exc:
                result = ReloadResult(False, f"reload rejected, previous tables kept: {exc}")
            except Exception as exc:  # database down, schema problems
                result = ReloadResult(False, f"reload failed, previous tables kept: {exc}")
            else:
                assert self.proxy is not None
                self.proxy.snapshot = snap
                result = ReloadResult(True, f"reloaded: {snap.summary()}")
            (log.info if result.ok else log.error)("%s", result.message)
            self.last_reload = result
            return result

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        snapshot = await self.load_snapshot()
        self.transport = Transport(
            tcp_idle_timeout=self.settings.tcp_idle_timeout,
            max_message_size=self.settings.max_message_size,
        )
        await self.transport.start(self.settings.sockets, self._on_message, self._on_send_error)
        sockets = _public(tuple(self.transport.bound))
        self.proxy = Proxy(sockets, core_config(self.settings), snapshot, local_addresses())
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
            loop.add_signal_handler(signal.SIGTERM, self._stop.set)
            loop.add_signal_handler(signal.SIGINT, self._stop.set)
        await self._start_admin()
        listening = ", ".join(str(s) for s in sockets)
        log.info("pks: ready (version %s) on %s; %s", __version__, listening, snapshot.summary())

    async def _start_admin(self) -> None:
        from pks.admin.serve import start_admin

        self._admin = await start_admin(self)

    async def run(self) -> None:
        await self.start()
        await self._stop.wait()
        await self.close()

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._admin is not None:
            from pks.admin.serve import stop_admin

            await stop_admin(self._admin)
        if self.transport is not None:
            await self.transport.close()
        log.info("pks: stopped")

    # ---- data path glue ------------------------------------------------------------------
    def _on_message(self, data: bytes, inbound: Inbound) -> None:
        proxy = self.proxy
        if proxy is None:
            return
        now = asyncio.get_running_loop().time()
        try:
            sends = proxy.receive(data, inbound, now)
        except Exception:
            log.exception("internal error on a message from %s; message dropped", inbound.source)
            return
        self._send_all(sends)

    def _on_send_error(self, send: Send, reason: str) -> None:
        if self.proxy is not None:
            now = asyncio.get_running_loop().time()
            self._send_all(self.proxy.send_failed(send, reason, now))

    def _send_all(self, sends: list[Send]) -> None:
        transport = self.transport
        assert transport is not None
        for item in sends:
            transport.send(item)
        self._rearm()

    def _rearm(self) -> None:
        assert self.proxy is not None
        when = self.proxy.next_deadline()
        if when is None or (self._timer_at is not None and self._timer_at <= when):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        assert self.proxy is not None
        now = asyncio.get_running_loop().time()
        try:
            sends = self.proxy.on_timer(now)
        except Exception:
            log.exception("internal error in a timer")
            sends = []
        self._send_all(sends)
