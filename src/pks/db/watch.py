"""Beside the data path: notice routing-table changes made by anyone, and database outages.

Two ways, chosen when the watcher (re)connects:

* **LISTEN** — PostgreSQL with the triggers of ``pks db init``: every INSERT/UPDATE/DELETE/
  TRUNCATE on ``address``, ``dialplan``, ``dispatcher``, ``pks_peer``, ``pks_set``, ``pks_ban`` or
  ``pks_block`` runs
  ``pg_notify('pks_changes', <table>)``. One dedicated psycopg ``AsyncConnection`` listens
  (never blocking the loop); notifications are debounced (a burst → one reload); between
  them a ``SELECT 1`` every ``interval`` checks the connection. A lost connection is retried
  with backoff, and on reconnection the :func:`fingerprint` is compared with the last one
  read, since notifications sent meanwhile are lost.
* **poll** — MySQL/MariaDB, SQLite, PostgreSQL without the triggers: every ``interval``
  seconds :func:`fingerprint` (in a worker thread) and, when it differs from the one of the
  last load, a reload. ``CHECKSUM TABLE`` on MySQL, ``md5(string_agg(row))`` on PostgreSQL,
  a hash of the rows on SQLite (skipped while SQLite's ``PRAGMA data_version`` says nothing
  was committed): in-place updates are seen, not only inserts.

The watcher tells its :class:`WatchTarget` (the server) when the database becomes unreachable
or reachable again, and asks it to reload; the target records the fingerprint each reload
read, so a change that fails to build is not retried until the tables change again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sqlite3
import threading
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, inspect, text

from pks.db.engine import CONNECT_TIMEOUT, is_unreachable

__all__ = [
    "CHANNEL",
    "WATCHED",
    "ChangeWatcher",
    "Fingerprint",
    "WatchTarget",
    "fingerprint",
    "install_triggers",
    "triggered_tables",
]

log = logging.getLogger("pks.db.watch")

WATCHED = ("address", "dialplan", "dispatcher", "pks_peer", "pks_set", "pks_ban", "pks_block")
"""Tables whose content makes the snapshot."""
CHANNEL = "pks_changes"
TRIGGER = "pks_notify_change"
QUIET = 0.05
"""Seconds without a further notification that end a burst."""
MAX_DEBOUNCE = 0.5
"""A continuous burst still reloads after this many seconds."""
MAX_BACKOFF = 5.0
"""Longest wait between two reconnection attempts."""

Fingerprint = tuple[tuple[str, ...], tuple[object, ...]]
"""(watched tables present, one content digest per table)."""


class WatchTarget(Protocol):
    """What the watcher drives (the server)."""

    seen_fingerprint: Fingerprint | None
    """The fingerprint taken by the last reload that read the tables (built or not)."""

    async def reload(self, reason: str = ..., *, only_if_changed: bool = ...) -> object: ...

    def database_up(self) -> None: ...

    def database_down(self, exc: BaseException) -> None: ...


# --- blocking helpers (worker thread / CLI) ---------------------------------------------------


def _present(conn: Connection) -> tuple[str, ...]:
    names = set(inspect(conn).get_table_names())
    return tuple(name for name in WATCHED if name in names)


def fingerprint(source: Engine | Connection) -> Fingerprint:
    """A digest of every watched table's content: equal digests ⇔ (practically) equal rows."""
    if isinstance(source, Engine):
        with source.connect() as conn:
            return fingerprint(conn)
    conn = source
    tables = _present(conn)
    if not tables:
        return tables, ()
    quote = conn.dialect.identifier_preparer.quote
    backend = conn.dialect.name
    if backend == "postgresql":
        parts = ", ".join(
            f"(SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
            f" || ':' || count(*) FROM {quote(name)} t)"
            for name in tables
        )
        values: tuple[object, ...] = tuple(conn.execute(text(f"SELECT {parts}")).one())
    elif backend in ("mysql", "mariadb"):
        rows = conn.execute(text("CHECKSUM TABLE " + ", ".join(map(quote, tables)))).all()
        values = tuple(row[1] for row in rows)
    else:
        digests = []
        for name in tables:
            digest = hashlib.blake2b(digest_size=16)
            for row in conn.execute(text(f"SELECT * FROM {quote(name)} ORDER BY 1")):
                digest.update(repr(tuple(row)).encode())
            digests.append(digest.hexdigest())
        values = tuple(digests)
    conn.rollback()  # no snapshot kept open (MySQL REPEATABLE READ would freeze the next one)
    return tables, values


_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {TRIGGER}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
    RETURN NULL;
END
$$
"""


def install_triggers(engine: Engine) -> list[str]:
    """(Re)install the notification triggers on every watched table present (PostgreSQL).

    A statement-level trigger adds one ``pg_notify`` per statement; it changes neither the
    table's columns nor its behaviour. Returns the tables now triggered.
    """
    with engine.begin() as conn:
        tables = _present(conn)
        quote = conn.dialect.identifier_preparer.quote
        conn.exec_driver_sql(_FUNCTION)
        for name in tables:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {TRIGGER} ON {quote(name)}")
            conn.exec_driver_sql(
                f"CREATE TRIGGER {TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE"
                f" ON {quote(name)} FOR EACH STATEMENT EXECUTE FUNCTION {TRIGGER}()"
            )
    return list(tables)


def triggered_tables(source: Engine | Connection) -> set[str]:
    """The visible tables that carry our notification trigger (PostgreSQL)."""
    if isinstance(source, Engine):
        with source.connect() as conn:
            return triggered_tables(conn)
    rows = source.execute(
        text(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE t.tgname = :name AND NOT t.tgisinternal AND pg_table_is_visible(c.oid)"
        ),
        {"name": TRIGGER},
    )
    return {str(name) for name in rows.scalars()}


def _listen_ready(engine: Engine) -> bool:
    """PostgreSQL and every watched table present carries the trigger."""
    if engine.url.get_backend_name() != "postgresql":
        return False
    with engine.connect() as conn:
        present = _present(conn)
        return bool(present) and set(present) <= triggered_tables(conn)


# --- the watcher ------------------------------------------------------------------------------


class ChangeWatcher:
    """One asyncio task applying database changes to ``target``; ``mode`` is ``listen`` or
    ``poll`` once known."""

    def __init__(self, engine: Engine, target: WatchTarget, interval: float) -> None:
        self.engine = engine
        self.target = target
        self.interval = interval
        self.mode: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._checked: Fingerprint | None = None
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_lock = threading.Lock()  # a check may still run in its thread at stop()
        self._data_version: int | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pks-db-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self._close_sqlite)

    def _close_sqlite(self) -> None:
        with self._sqlite_lock:
            if self._sqlite is not None:
                self._sqlite.close()
                self._sqlite = None

    async def _run(self) -> None:
        backoff = self.interval
        while True:
            try:
                listen = await asyncio.to_thread(_listen_ready, self.engine)
            except Exception as exc:
                self._failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            self._set_mode("listen" if listen else "poll")
            try:
                if listen:
                    await self._listen()
                else:
                    await self._poll()
                backoff = self.interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _set_mode(self, mode: str) -> None:
        if mode != self.mode:
            if mode == "listen":
                log.info("watching table changes: LISTEN %s (PostgreSQL triggers)", CHANNEL)
            else:
                hint = (
                    " (no change triggers: run pks db init for instant changes)"
                    if self.engine.url.get_backend_name() == "postgresql"
                    else ""
                )
                log.info("watching table changes: checking every %g s%s", self.interval, hint)
        self.mode = mode

    def _failed(self, exc: BaseException) -> None:
        if is_unreachable(exc):
            self.target.database_down(exc)
        else:
            log.error("database change check failed: %s", exc)

    async def _check(self, reason: str) -> None:
        """Compare the tables' fingerprint with the last one read; reload on a difference."""
        current = await asyncio.to_thread(fingerprint, self.engine)
        self.target.database_up()
        if current != self.target.seen_fingerprint:
            await self.target.reload(reason, only_if_changed=True)
        self._checked = current

    def _sqlite_unchanged(self) -> bool:
        """SQLite: nothing committed since the last check (``PRAGMA data_version`` on a
        connection of our own), so the fingerprint — a read of every row — can be skipped."""
        path = self.engine.url.database
        if self.engine.url.get_backend_name() != "sqlite" or not path or path == ":memory:":
            return False
        with self._sqlite_lock:
            if self._sqlite is None:
                self._sqlite = sqlite3.connect(path, check_same_thread=False)
            version = self._sqlite.execute("PRAGMA data_version").fetchone()[0]
        unchanged = version == self._data_version and self._checked is not None
        self._data_version = version
        # a reload elsewhere (API) may have read other rows than our last check: compare
        return unchanged and self._checked == self.target.seen_fingerprint

    async def _poll(self) -> None:
        """Check every ``interval``; return after an outage so the mode is detected again."""
        while True:
            try:
                if not await asyncio.to_thread(self._sqlite_unchanged):
                    await self._check("table change detected")
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                self.target.database_down(exc)
                await self._wait_until_reachable()
                return
            await asyncio.sleep(self.interval)

    async def _wait_until_reachable(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await asyncio.to_thread(fingerprint, self.engine)
            except Exception as exc:
                if not is_unreachable(exc):
                    raise
                continue
            return

    async def _listen(self) -> None:
        import psycopg

        _, params = self.engine.dialect.create_connect_args(self.engine.url)
        params = {key: value for key, value in params.items() if key != "context"}
        for key, value in (("connect_timeout", CONNECT_TIMEOUT), ("keepalives", 1)):
            params.setdefault(key, value)
        conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            await self._check("tables changed while not listening")
            while True:
                tables = await self._notified(conn, self.interval)
                if not tables:
                    await asyncio.wait_for(conn.execute("SELECT 1"), self.interval + 5)
                    continue
                loop = asyncio.get_running_loop()
                deadline = loop.time() + MAX_DEBOUNCE
                while loop.time() < deadline:
                    more = await self._notified(conn, QUIET)
                    if not more:
                        break
                    tables |= more
                await self.target.reload(
                    f"tables changed: {', '.join(sorted(tables))}", only_if_changed=True
                )
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    @staticmethod
    async def _notified(conn: Any, timeout: float) -> set[str]:
        """The tables named by the notifications arriving within ``timeout`` s (first one
        ends the wait)."""
        tables: set[str] = set()
        async for notify in conn.notifies(timeout=timeout, stop_after=1):
            tables.add(notify.payload)
        return tables


def describe_watch(mode: str | None, interval: float) -> str | None:
    """For status output."""
    if mode is None:
        return None
    return f"LISTEN {CHANNEL}" if mode == "listen" else f"poll every {interval:g} s"
