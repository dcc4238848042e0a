"""A long database outage with changes made meanwhile, on PostgreSQL and MariaDB.

The real servers are shared by every test running at the time, so they are never stopped:
pks reaches its database through a TCP forwarder of the test (:class:`Cut`, asyncio, on
127.0.0.1), which the test cuts (every connection reset, new ones refused) and restores.
"Several minutes" is simulated by the outage's length relative to the poll interval: with
``PKS_DB_POLL_INTERVAL`` at 0.05 s an 8-second outage is 160 poll intervals — far past the
watcher's longest reconnection backoff (5 s) — while changes are made directly in the
database at several moments of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest
from sqlalchemy.engine import make_url
from test_database import RULE, eventually, rules, settings, start, started, status
from test_server import exchange, options, seed

from dbs import execute
from pks.server import Server

POLL = 0.05
OUTAGE = 8.0
__all__ = ["started"]  # the fixture, imported for pytest


class Cut:
    """A TCP forwarder 127.0.0.1:port → ``target`` that can be cut and restored."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections, reset every open one."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.mark.db
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
async def test_a_long_outage_with_changes_meanwhile(
    kind: str,
    database_servers,  # type: ignore[no-untyped-def]
    started: list[Server],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    database = database_servers.get(kind)
    database.wipe()
    direct = database.url
    seed(direct)  # PostgreSQL: with the change triggers (LISTEN mode)
    url = make_url(direct)
    cut = Cut(url.host or "127.0.0.1", url.port or (5432 if kind == "postgresql" else 3306))
    await cut.open()
    through = url.set(host="127.0.0.1", port=cut.port).render_as_string(hide_password=False)
    config = settings(through).model_copy(update={"db_poll_interval": POLL})
    srv = await start(started, config)
    await eventually(lambda: srv.watcher is not None and srv.watcher.mode is not None, "watch")
    before = rules(srv)
    live = srv.snapshot
    port = srv.settings.sockets[0].port

    await cut.cut()
    await eventually(lambda: not srv.db.reachable, "the outage to be noticed")
    loop = asyncio.get_running_loop()
    began = loop.time()
    execute(direct, RULE.format(prefix="44"))  # changes pks cannot see, at several moments
    await asyncio.sleep(OUTAGE / 2)
    assert (await exchange(options(port, "z9hG4bKo1"), port)).startswith(b"SIP/2.0 200 OK")
    execute(direct, RULE.format(prefix="45"))
    execute(direct, "DELETE FROM dialplan WHERE match_exp = '^44'")
    execute(direct, RULE.format(prefix="46"))
    result = await srv.reload()
    assert not result.ok and "database unreachable" in result.message
    await asyncio.sleep(max(0.0, OUTAGE - (loop.time() - began)))
    assert srv.snapshot is live  # routed from the last tables all along
    state = await status(srv)
    assert state["reachable"] is False and state["routing_from"] == "database"
    assert (await exchange(options(port, "z9hG4bKo2"), port)).startswith(b"SIP/2.0 200 OK")

    await cut.open()
    await eventually(lambda: srv.db.reachable, "the database to be back", timeout=20)
    await eventually(lambda: rules(srv) == before + 2, "the changes made meanwhile", timeout=10)
    patterns = sorted(rule.match_exp for rule in srv.rows.dialplan) if srv.rows else []
    assert patterns == ["^33", "^45", "^46"], patterns
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database unreachable (" in m for m in messages) == 1, messages
    assert sum("database reachable again" in m for m in messages) == 1, messages
    execute(direct, RULE.format(prefix="47"))  # later changes arrive as before
    await eventually(lambda: rules(srv) == before + 3, "a later change")
    await cut.cut()
