"""The I/O spine: load the routing snapshot, open the sockets, drive the sans-IO ``Proxy``.

Start-up: settings → database (an empty one gets every table, see ``pks.db.migrate.prepare``)
→ snapshot built off the event loop → transport bound → admin API → change watcher →
``pks: ready``. With the database unreachable, start-up fails with a clear message unless
``PKS_SNAPSHOT_CACHE`` holds the rows of a former good load, which are then routed from.

Every message goes transport → ``Proxy.receive`` → ``Send`` effects → transport, through
``pks.driver.Driver``, which also keeps one ``loop.call_at`` armed at the proxy's next
deadline. ``reload()`` (SIGHUP, admin API, ``pks.db.watch.ChangeWatcher`` on a table change)
reads the tables and builds a new snapshot in a worker thread, then swaps one reference; a
failed build leaves the old one live. A database outage never stops routing: the last
snapshot stays, ``database`` in ``/status`` says so, and the watcher reloads when the
database is back.

With ``PKS_WORKERS`` > 1 each worker process runs one ``Server`` given a
:class:`pks.workers.node.WorkerNode`: it binds the sockets with SO_REUSEPORT, hands messages
that belong to another worker over, and only worker 0 serves the admin API, watches the
database and writes the cache; worker 0's reloads are made by every worker (docs/workers.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import os
import secrets
import signal
import socket
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from pks import __version__, accel, cdr, heap
from pks.cluster import FloodSync
from pks.config import Settings
from pks.db import engine as db_engine
from pks.db import migrate
from pks.db.cache import CacheError, read_cache, write_cache
from pks.db.load import load_rows
from pks.db.watch import ChangeWatcher, Fingerprint, describe_watch, fingerprint
from pks.dns.refresh import DnsRefresher
from pks.dns.resolve import Resolver, make_resolver
from pks.driver import Driver
from pks.loop import loop_name
from pks.metrics.figures import Figures, ReloadLog, gather, process_report
from pks.metrics.lag import LoopLag
from pks.net import SocketInfo
from pks.notify import notify
from pks.proxy import CoreConfig, Proxy
from pks.reload import ReloadResult
from pks.route import Policy
from pks.route.rows import TableRows
from pks.route.snapshot import Snapshot, SnapshotError, build_snapshot
from pks.sip.parse import configure as configure_parser
from pks.transport import Transport

if TYPE_CHECKING:
    from pks.cdr.service import CdrService
    from pks.workers.node import WorkerNode

log = logging.getLogger("pks.server")


DRAIN_TICK = 0.05
"""Seconds between two looks at the calls left while stopping."""
LINGER = 2.0
"""Seconds a stopping proxy waits at most for the answers to its last CANCELs."""


class StartupError(RuntimeError):
    """The proxy cannot start (no snapshot to route from); the message says what to do."""


@dataclass(slots=True)
class DatabaseState:
    """What the server knows of its database, for ``/status`` and the logs."""

    reachable: bool = True
    error: str | None = None
    since: float | None = None
    """When ``reachable`` last changed (None: since start-up)."""
    last_change_applied: float | None = None
    """When the live snapshot was last replaced by one read from the database."""
    source: str = "database"
    """Where the live snapshot's rows come from: ``database`` or ``cache``."""
    cache_written_at: float | None = None
    load_error: str | None = None
    """Why the database's tables are not the ones routed from (a bad row at start-up)."""


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """The driver's own message (without SQLAlchemy's wrapping), on one line."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(cause).split()) or type(cause).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")


def core_config(settings: Settings) -> CoreConfig:
    return CoreConfig(
        fr_timer=settings.fr_timer,
        fr_inv_timer=settings.fr_inv_timer,
        failover_codes=settings.failover_code_set,
        reject_unknown=settings.unknown_source == "reject",
        max_forwards=settings.max_forwards,
        server_header=settings.server_header,
        default_socket=settings.default_socket,
        probe=settings.probe_config,
        probing_threshold=settings.ds_probing_threshold,
        inactive_threshold=settings.ds_inactive_threshold,
        call_max_duration=settings.call_max_duration,
        policy=Policy(settings.method_set, settings.max_user_length),
        max_transactions=settings.max_transactions,
        rate_limit=settings.rate_limit,
        rate_peer_limit=settings.rate_peer_limit,
        rate_window=settings.rate_window,
        ban_time=settings.ban_time,
        intl_prefixes=settings.intl_prefix_tuple,
        local_prefixes=settings.local_prefix_tuple,
    )


def dialog_secret(settings: Settings) -> bytes:
    """The key of our Record-Route tokens: ``PKS_SECRET``, else the secret file's (made on
    first start), else — the file cannot be read or written — a random one, said once."""
    if settings.secret:
        return settings.secret.encode()
    path = Path(settings.secret_file)
    try:
        if not path.exists():  # written whole, then linked: workers starting together agree
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pks-secret-")
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
            os.unlink(tmp)
        key = path.read_text().strip()
        if len(key) >= 16:
            return key.encode()
        log.warning("%s holds fewer than 16 characters: a random dialog key is used", path)
    except OSError as exc:
        log.warning("no dialog key file (%s): a random key is used", exc)
    return secrets.token_bytes(32)


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

    def __init__(self, settings: Settings, worker: WorkerNode | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self.leads = worker is None or worker.leads
        """This process serves the admin API, watches the database, writes the cache."""
        self.started_at = time.time()
        self.engine = db_engine.make_engine(settings.db_url)
        self.proxy: Proxy | None = None
        self.transport: Transport | None = None
        self.last_reload: ReloadResult | None = None
        self.driver = Driver()  # the per-message glue: transport → proxy → transport
        self._stop = asyncio.Event()
        self._stop_now = False  # a second SIGTERM during the drain
        self._reload_lock = asyncio.Lock()
        self._admin: object | None = None
        self.db_description = db_engine.describe(self.engine)
        self.db = DatabaseState()
        self.rows: TableRows | None = None
        self.seen_fingerprint: Fingerprint | None = None
        self.watcher: ChangeWatcher | None = None
        self.dns: DnsRefresher | None = None
        self.heap_keeper = heap.Keeper(settings.gc_sweep_interval)
        self.cdr: CdrService | None = None  # call records (PKS_CDR_SINKS), pks.cdr
        self.floods: FloodSync | None = None  # bans' expiry, Redis sharing (pks.cluster)
        self.reload_log = ReloadLog()  # for /metrics (pks.metrics)
        self.lag = LoopLag()
        configure_parser(max_headers=settings.max_headers)  # the parser's bound is per process

    @property
    def snapshot(self) -> Snapshot | None:
        return self.proxy.snapshot if self.proxy is not None else None

    # ---- database ------------------------------------------------------------------------
    def _read_tables(self, prepare: bool = False) -> tuple[Fingerprint, TableRows | Exception]:
        """Blocking: the tables' fingerprint, then their rows (or the content error)."""
        if prepare:
            migrate.prepare(self.engine)
        with self.engine.connect() as conn:
            seen = fingerprint(conn)
            try:
                return seen, load_rows(conn)
            except (db_engine.SchemaVersionError, ValueError) as exc:  # LoadError is one
                return seen, exc

    def _build(self, rows: TableRows) -> Snapshot:
        """Compile ``rows`` (blocking: call it in a worker thread)."""
        snapshot = build_snapshot(rows, now=time.time(), algorithm=self.settings.dispatcher_alg)
        if self.worker is not None:
            self.worker.adopt(snapshot)
        return snapshot

    async def load_snapshot(self) -> Snapshot:
        """Read the tables and build a snapshot, all off the event loop."""
        _, rows = await asyncio.to_thread(self._read_tables)
        if isinstance(rows, Exception):
            raise rows
        return await asyncio.to_thread(self._build, rows)

    def database_up(self) -> None:
        state = self.db
        if not state.reachable:
            down_for = time.time() - (state.since or self.started_at)
            log.warning("database reachable again (%s) after %.1f s", self.db_description, down_for)
            state.since = time.time()
        state.reachable, state.error = True, None

    def database_down(self, exc: BaseException) -> None:
        state = self.db
        state.error = _one_line(exc)
        if state.reachable:
            log.error(
                "database unreachable (%s): %s; routing goes on with the tables loaded before",
                self.db_description,
                state.error,
            )
            state.reachable, state.since = False, time.time()

    def database_status(self) -> dict[str, Any]:
        """The ``database`` object of ``/status``."""
        state = self.db
        return {
            "url": self.db_description,
            "reachable": state.reachable,
            "error": state.error,
            "since": _iso(state.since),
            "last_change_applied": _iso(state.last_change_applied),
            "routing_from": state.source,
            "cache_written_at": _iso(state.cache_written_at),
            "load_error": state.load_error,
            "watch": describe_watch(
                self.watcher.mode if self.watcher else None, self.settings.db_poll_interval
            ),
        }

    async def _save_cache(self, rows: TableRows) -> None:
        path = self.settings.snapshot_cache
        if path is None or not self.leads:
            return
        try:
            await asyncio.to_thread(write_cache, path, rows, self.db_description)
        except OSError as exc:
            log.warning("cannot write the snapshot cache %s: %s", path, exc)

    async def reload(
        self, reason: str = "reload requested", *, only_if_changed: bool = False
    ) -> ReloadResult:
        """Read the tables, build a new snapshot and swap it in; on any error keep the
        current one. ``reason`` is logged. With ``only_if_changed`` (the change watcher),
        rows equal to the live ones keep the live snapshot; an explicit reload always
        rebuilds (gateway host names are resolved again)."""
        async with self._reload_lock:
            began = time.perf_counter()
            result = await self._reload(only_if_changed)
            if self.worker is not None and self.worker.leads:
                result = await self.worker.reload_others(result, reason, only_if_changed)
            self.reload_log.record(result.ok, time.perf_counter() - began)
            level = logging.INFO if result.ok else logging.ERROR
            log.log(level, "%s (%s)", result.message, reason)
            self.last_reload = result
            return result

    async def _reload(self, only_if_changed: bool) -> ReloadResult:
        try:
            seen, rows = await asyncio.to_thread(self._read_tables)
        except Exception as exc:
            if db_engine.is_unreachable(exc):
                self.database_down(exc)
                exc_text = f"database unreachable: {_one_line(exc)}"
            else:
                exc_text = _one_line(exc)
            return ReloadResult(False, f"reload failed, previous tables kept: {exc_text}")
        self.database_up()
        self.seen_fingerprint = seen
        if isinstance(rows, Exception):
            return ReloadResult(False, f"reload failed, previous tables kept: {rows}")
        assert self.proxy is not None
        live = self.proxy.snapshot
        # comparing every row is long with large tables: off the event loop
        if (
            only_if_changed
            and live is not None
            and await asyncio.to_thread(operator.eq, rows, self.rows)
        ):
            self.db.source, self.db.load_error = "database", None
            return ReloadResult(True, f"reloaded: {live.summary()} (no change)")
        try:
            snap = await asyncio.to_thread(self._build, rows)
        except SnapshotError as exc:
            return ReloadResult(False, f"reload rejected, previous tables kept: {exc}")
        if self.dns is not None:
            await self.dns.prime(snap)  # the new names resolve before calls use them
        self.proxy.snapshot = snap
        self.rows = rows
        heap.settle()  # the new tables out of the cyclic collector's walks (pks.heap)
        self.db.source, self.db.load_error = "database", None
        self.db.last_change_applied = time.time()
        await self._save_cache(rows)
        return ReloadResult(True, f"reloaded: {snap.summary()}")

    async def _first_snapshot(self) -> Snapshot:
        """The start-up snapshot: from the database, else from the cache, else an error."""
        try:
            seen, rows = await asyncio.to_thread(self._read_tables, self.leads)
        except Exception as exc:
            if not db_engine.is_unreachable(exc):
                raise
            return await self._snapshot_from_cache(exc)
        if isinstance(rows, Exception):
            return await self._cache_for_bad_tables(seen, rows)
        try:
            snapshot = await asyncio.to_thread(self._build, rows)
        except SnapshotError as exc:
            return await self._cache_for_bad_tables(seen, exc)
        self.seen_fingerprint, self.rows = seen, rows
        self.db.last_change_applied = time.time()
        await self._save_cache(rows)
        return snapshot

    async def _cache_for_bad_tables(self, seen: Fingerprint, problem: Exception) -> Snapshot:
        """The database answers but its tables do not load or build (a bad row): start from
        ``PKS_SNAPSHOT_CACHE`` when it holds good tables, and say so; the change watcher
        loads the tables again once they change (``seen`` is their current fingerprint)."""
        path = self.settings.snapshot_cache
        if path is None:
            raise problem
        try:
            rows, written, source = await asyncio.to_thread(read_cache, path)
            snapshot = await asyncio.to_thread(self._build, rows)
        except (CacheError, SnapshotError) as cache_exc:
            raise StartupError(
                f"the tables of {self.db_description} cannot be used: {problem};"
                f" nor can the cache: {cache_exc}"
            ) from None
        log.error(
            "the tables of %s cannot be used: %s; starting from the snapshot cache %s (tables"
            " of %s read at %s) until a corrected version is in the database",
            self.db_description,
            problem,
            path,
            source,
            _iso(written),
        )
        self.seen_fingerprint, self.rows = seen, rows
        self.db.source, self.db.cache_written_at = "cache", written
        self.db.load_error = _one_line(problem)
        return snapshot

    async def _snapshot_from_cache(self, exc: BaseException) -> Snapshot:
        down = f"database unreachable at {self.db_description}: {_one_line(exc)}"
        path = self.settings.snapshot_cache
        if path is None:
            raise StartupError(
                f"{down}. No snapshot to route from: start the database, or set"
                " PKS_SNAPSHOT_CACHE so that the last good tables are kept for such a start"
            ) from None
        try:
            rows, written, source = await asyncio.to_thread(read_cache, path)
            snapshot = await asyncio.to_thread(self._build, rows)
        except (CacheError, SnapshotError) as cache_exc:
            raise StartupError(f"{down}; cannot start from the cache: {cache_exc}") from None
        log.warning(
            "%s; starting from the snapshot cache %s (tables of %s read at %s)",
            down,
            path,
            source,
            _iso(written),
        )
        self.rows = rows
        self.db = DatabaseState(
            reachable=False,
            error=_one_line(exc),
            since=time.time(),
            source="cache",
            cache_written_at=written,
        )
        return snapshot

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        snapshot = await self._first_snapshot()
        worker = self.worker
        self.transport = Transport(
            tcp_idle_timeout=self.settings.tcp_idle_timeout,
            max_message_size=self.settings.max_message_size,
            send_thread=self.settings.send_thread,
            recv_batch=self.settings.recv_batch,
            reuse_port=worker is not None,
            inherited=() if worker is None else worker.udp_sockets,
            tcp_max_connections=self.settings.tcp_max_connections,
            tcp_max_per_source=self.settings.tcp_max_per_source,
            tcp_message_timeout=self.settings.tcp_message_timeout,
            tcp_max_output=self.settings.tcp_max_output,
            admit=self.admits,
        )
        driver = self.driver
        receive = driver.handle_message if worker is None else worker.router.on_message
        await self.transport.start(self.settings.sockets, receive, driver.on_send_error)
        driver.sender = self.transport.sender
        sockets = _public(tuple(self.transport.bound))
        config = core_config(self.settings)
        config = replace(config, secret=dialog_secret(self.settings))
        self.proxy = Proxy(
            sockets,
            config,
            snapshot,
            local_addresses(),
            branch_prefix=None if worker is None else worker.prefix,
        )
        self.proxy.wall_offset = time.time() - loop.time()
        self.floods = FloodSync(self.proxy, self.settings.redis_url)
        self.floods.start()
        self.cdr = cdr.start(self.settings, self.proxy, None if worker is None else worker.index)
        self.transport.pin_connections(self.proxy.pins)  # live dialogs' TCP stays open
        proxy = self.proxy
        self.dns = DnsRefresher(
            proxy.dns,
            Resolver(make_resolver(self.settings.dns_server_list)),
            loop.time,
            lambda: proxy.snapshot,
            max_stale=self.settings.dns_max_stale,
        )
        await self.dns.prime(snapshot)
        self.dns.start()
        if worker is not None:
            worker.router.admit = proxy.admits
            await worker.start(self)
        heap.tune()
        heap.settle(collect=True)
        self.heap_keeper.start()
        self.lag.start()
        driver.proxy = self.proxy
        driver.send_all(self.proxy.start(loop.time()))
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(
                signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP"))
            )
            loop.add_signal_handler(signal.SIGTERM, self.stop)
            if worker is None:  # workers leave Ctrl-C to their supervisor
                loop.add_signal_handler(signal.SIGINT, self.stop)
        if self.leads:
            await self._start_admin()
            self.watcher = ChangeWatcher(self.engine, self, self.settings.db_poll_interval)
            self.watcher.start()
        listening = ", ".join(str(s) for s in sockets)
        if worker is None:
            log.info(
                "pks: ready (version %s, %s loop, core %s) on %s; %s",
                __version__,
                loop_name(),
                accel.status(),
                listening,
                snapshot.summary(),
            )
            notify("READY=1", f"STATUS=routing on {listening}")  # systemd Type=notify
        else:
            log.info(
                "pks: worker %d of %d up on %s; %s",
                worker.index,
                worker.workers,
                listening,
                snapshot.summary(),
            )
            worker.ready()

    async def _start_admin(self) -> None:
        # imported here, not for a cycle (pks.admin never imports the server) but for cost:
        # only the leading process serves the API, and FastAPI with uvicorn is about 30 MB
        # and a second of start-up that the other workers would pay for nothing
        from pks.admin.serve import start_admin

        self._admin = await start_admin(self)

    async def run(self) -> None:
        await self.start()
        await self._stop.wait()
        await self.drain()
        await self.close()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM, Ctrl-C); asked a second time, without waiting."""
        if self._stop.is_set():
            self._stop_now = True
        self._stop.set()

    async def drain(self) -> None:
        """The graceful stop (docs/operations.md): new calls get 503 while the ones in flight
        go on, until none is left or ``PKS_DRAIN_TIMEOUT``; then the ringing ones are
        cancelled and their callers answered (``Proxy.shutdown``), and their CANCELs get up to
        ``LINGER`` seconds to be answered (the gateways' 487s ACKed)."""
        proxy = self.proxy
        if proxy is None:
            return
        loop = asyncio.get_running_loop()
        proxy.drain(loop.time())
        with_calls = self.settings.drain_calls

        def busy() -> int:
            return proxy.in_flight + (len(proxy.calls) if with_calls else 0)

        timeout = self.settings.drain_timeout
        if busy():
            log.info(
                "pks: stopping: new calls get 503; waiting up to %g s for %d call(s)"
                " (SIGTERM again: stop now)",
                timeout,
                busy(),
            )
        deadline = loop.time() + timeout
        while busy() and loop.time() < deadline and not self._stop_now:
            await asyncio.sleep(DRAIN_TICK)
        left = proxy.in_flight
        self.driver.send_all(proxy.shutdown(loop.time()))
        if left:
            log.warning(
                "pks: stopping: %d call(s) still unanswered: 503 to their callers, CANCEL to"
                " their gateways",
                left,
            )
        linger = loop.time() + LINGER
        while proxy.settling and loop.time() < linger and not self._stop_now:
            await asyncio.sleep(DRAIN_TICK)

    async def close(self) -> None:
        if self.worker is None:
            notify("STOPPING=1")
        else:
            self.worker.close()
        if self.watcher is not None:
            await self.watcher.stop()
        if self.dns is not None:
            await self.dns.close()
        if self.floods is not None:
            await self.floods.close()
        self.driver.close()
        self.heap_keeper.close()
        self.lag.close()
        if self._admin is not None:
            from pks.admin.serve import stop_admin  # loaded by _start_admin already

            await stop_admin(self._admin)
        if self.transport is not None:
            await self.transport.close()
        if self.cdr is not None:  # the records of calls still up, then the spool's last batch
            if self.proxy is not None:
                self.proxy.calls.flush_records(asyncio.get_running_loop().time())
            await asyncio.to_thread(self.cdr.close)
        await asyncio.to_thread(self.engine.dispose)
        log.info("pks: stopped")

    # ---- instance-wide figures (every worker's, in worker mode) ----------------------------
    def admits(self, host: str) -> bool:
        """The transport's source gate (``Proxy.admits``), asked of the live proxy so that a
        snapshot swap is seen at once; nothing is admitted before the proxy exists."""
        proxy = self.proxy
        return proxy is not None and proxy.admits(host)

    def local_stats(self) -> Counter[str]:
        """This process's counters: the proxy's, and the transport's drops at the edge."""
        stats: Counter[str] = Counter()
        if self.proxy is not None:
            stats.update(self.proxy.stats)
            shield = self.proxy.gate.shield  # packets and connections a ban stopped, bans made
            stats["dropped_banned"] = shield.banned_drops
            stats["bans_made"] = shield.bans_made
        if self.transport is not None:
            stats.update(self.transport.drops)
        if self.cdr is not None:
            stats.update(self.cdr.stats())
        return stats

    def metrics_report(self) -> dict[str, Any]:
        """This process's call tallies and event-loop lag (``pks.metrics.figures``)."""
        return process_report(self.proxy, self.lag)

    async def metrics_figures(self) -> Figures:
        """Everything ``/metrics`` shows, for the whole instance (every worker's)."""
        if self.worker is None:
            proxy = self.proxy
            reports = [
                {
                    "stats": self.local_stats(),
                    "transactions": proxy.transactions if proxy is not None else 0,
                    "calls": len(proxy.calls) if proxy is not None else 0,
                    "by_peer": dict(proxy.calls.by_peer) if proxy is not None else {},
                    "metrics": self.metrics_report(),
                }
            ]
        else:
            reports = await self.worker.all_stats()
        return gather(
            reports,
            self.proxy,
            reloads=self.reload_log,
            started_at=self.started_at,
            database_up=self.db.reachable,
            routing_from_cache=self.db.source == "cache",
        )

    async def transaction_stats(self) -> tuple[Counter[str], int]:
        """The proxy's counters (with the edge's drops) and current transactions, summed over
        every worker."""
        total: Counter[str] = Counter()
        current = 0
        if self.worker is None:
            total.update(self.local_stats())
            if self.proxy is not None:
                current = self.proxy.transactions
            return total, current
        for worker in await self.worker.all_stats():
            total.update({str(k): int(v) for k, v in worker.get("stats", {}).items()})
            current += int(worker.get("transactions", 0))
        return total, current

    async def limit_counts(self) -> dict[str, object] | None:
        """Calls counted against limits, for the whole instance (None: not running yet)."""
        if self.proxy is None:
            return None
        if self.worker is None:
            return self.proxy.limit_counts()
        return await self.worker.limit_counts(self.proxy)

    async def workers_status(self) -> list[dict[str, Any]] | None:
        """Per worker: pid, transactions, calls, handoffs (None: one process)."""
        if self.worker is None:
            return None
        return [
            {
                k: w.get(k)
                for k in (
                    "index",
                    "pid",
                    "transactions",
                    "calls",
                    "handed_off",
                    "handed_in",
                    "handoff_failed",
                )
            }
            | {"requests": w.get("stats", {}).get("requests", 0)}
            for w in await self.worker.all_stats()
        ]
