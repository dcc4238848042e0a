"""The server and its database: changes by anyone applied without restart (LISTEN/NOTIFY
or periodic check), outages ridden out on the last snapshot, start-up from the snapshot
cache, and a clear failure when there is nothing to route from."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from test_server import HOST, PEER, exchange, options, seed

from dbs import PrivatePostgres, execute
from pks.config import Settings
from pks.db import ensure_schema, make_engine
from pks.route.snapshot import Snapshot
from pks.server import Server, StartupError
from servers import free_port, free_tcp_port

POLL = 0.2
RULE = (
    "INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp, attrs)"
    " VALUES (2, 1, 1, '^{prefix}', 0, '', '', '7')"
)


def settings(url: str, **extra: object) -> Settings:
    return Settings(
        ds_ping_interval=0,
        listen=f"udp:{HOST}:{free_port(HOST)}",
        db_url=url,
        admin_listen=f"127.0.0.1:{free_tcp_port()}",
        db_poll_interval=POLL,
        **extra,
    )


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not condition():
        if loop.time() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)
    return loop.time() - start


def rules(server: Server) -> int:
    snap = server.snapshot
    assert snap is not None
    return snap.summary().rules


@pytest.fixture
async def started() -> AsyncIterator[list[Server]]:
    servers: list[Server] = []
    yield servers
    for srv in servers:
        await srv.close()


async def start(servers: list[Server], config: Settings) -> Server:
    srv = Server(config)
    await asyncio.wait_for(srv.start(), 15)
    servers.append(srv)
    return srv


async def status(srv: Server) -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://{srv.settings.admin_listen}/status")
    database = reply.json()["database"]
    assert isinstance(database, dict)
    return database


async def test_a_change_by_another_tool_is_applied_without_reload(
    db_url: str, started: list[Server]
) -> None:
    seed(db_url)
    srv = await start(started, settings(db_url))
    await eventually(lambda: srv.watcher is not None and srv.watcher.mode is not None, "watch")
    expected = "listen" if db_url.startswith("postgresql") else "poll"
    assert srv.watcher is not None and srv.watcher.mode == expected
    before = rules(srv)
    execute(db_url, RULE.format(prefix="44"))
    took = await eventually(lambda: rules(srv) == before + 1, "the new rule")
    print(f"{db_url.split(':')[0]}: change applied after {took:.2f} s ({expected})")
    state = await status(srv)
    assert state["reachable"] is True and state["routing_from"] == "database"
    assert state["last_change_applied"] is not None


@pytest.mark.db
async def test_postgresql_without_triggers_falls_back_to_polling(
    database_servers,  # type: ignore[no-untyped-def]
    started: list[Server],
) -> None:
    database = database_servers.get("postgresql")
    database.wipe()
    engine = make_engine(database.url)
    ensure_schema(engine)  # a Kamailio database: pks run adds its tables, not the triggers
    engine.dispose()
    srv = await start(started, settings(database.url))
    await eventually(lambda: srv.watcher is not None and srv.watcher.mode == "poll", "polling")
    before = rules(srv)
    execute(database.url, RULE.format(prefix="45"))
    await eventually(lambda: rules(srv) == before + 1, "the new rule")


async def test_a_bad_change_keeps_the_old_snapshot_and_is_logged_once(
    db_url: str, started: list[Server], caplog: pytest.LogCaptureFixture
) -> None:
    seed(db_url)
    srv = await start(started, settings(db_url))
    live = srv.snapshot
    caplog.set_level(logging.ERROR, logger="pks.server")
    execute(db_url, RULE.format(prefix="(unclosed"))
    await eventually(
        lambda: srv.last_reload is not None and not srv.last_reload.ok, "the rejected reload"
    )
    await asyncio.sleep(POLL * 5)  # further checks see no new change: no new attempt
    rejected = [r for r in caplog.records if "reload rejected" in r.getMessage()]
    assert len(rejected) == 1, rejected
    assert srv.snapshot is live
    execute(db_url, "DELETE FROM dialplan WHERE dpid = 2")
    await eventually(lambda: srv.last_reload is not None and srv.last_reload.ok, "a good reload")


async def test_start_up_with_an_unreachable_database_fails_with_a_clear_message() -> None:
    srv = Server(settings("postgresql://postgres@127.0.0.1:1/pks"))
    with pytest.raises(StartupError) as err:
        await asyncio.wait_for(srv.start(), 15)
    message = str(err.value)
    assert message.startswith("database unreachable at postgresql+psycopg://postgres@127.0.0.1:1")
    assert "No snapshot to route from" in message and "PKS_SNAPSHOT_CACHE" in message
    await srv.close()


async def test_start_up_from_the_snapshot_cache(tmp_path: Path, started: list[Server]) -> None:
    url = f"sqlite:///{tmp_path / 'pks.db'}"
    cache = tmp_path / "snapshot.json"
    seed(url)
    first = await start(started, settings(url, snapshot_cache=str(cache)))
    assert json.loads(cache.read_text())["tables"]["dialplan"][0]["match_exp"] == "^33"
    summary = first.snapshot.summary() if first.snapshot else None
    await first.close()
    started.remove(first)

    down = settings("postgresql://postgres@127.0.0.1:1/pks", snapshot_cache=str(cache))
    srv = await start(started, down)
    assert srv.snapshot is not None and summary is not None
    assert replace(srv.snapshot.summary(), built_at=None) == replace(summary, built_at=None)
    state = await status(srv)
    assert state["routing_from"] == "cache" and state["reachable"] is False
    assert "127.0.0.1:1" in str(state["error"]) or state["error"]
    reply = await exchange(
        options(srv.settings.sockets[0].port, "z9hG4bKc1"), srv.settings.sockets[0].port
    )
    assert reply.startswith(b"SIP/2.0 200 OK")


async def test_a_bad_cache_is_reported(tmp_path: Path) -> None:
    cache = tmp_path / "snapshot.json"
    cache.write_text("{not json")
    srv = Server(settings("postgresql://postgres@127.0.0.1:1/pks", snapshot_cache=str(cache)))
    with pytest.raises(StartupError, match="cannot start from the cache: cannot read snapshot"):
        await asyncio.wait_for(srv.start(), 15)
    await srv.close()


@pytest.mark.db
@pytest.mark.parametrize("triggers", [True, False], ids=["listen", "poll"])
async def test_outage_keeps_routing_and_recovery_applies_pending_changes(
    private_postgres: PrivatePostgres,
    started: list[Server],
    caplog: pytest.LogCaptureFixture,
    triggers: bool,
) -> None:
    caplog.set_level(logging.INFO)
    url = private_postgres.create_database(f"outage_{'listen' if triggers else 'poll'}")
    if triggers:
        seed(url)
    else:
        engine = make_engine(url)
        ensure_schema(engine)
        engine.dispose()
        execute(url, f"INSERT INTO address (grp, ip_addr, tag) VALUES (2, '{PEER}', 'c')")
    srv = await start(started, settings(url))
    await eventually(lambda: srv.watcher is not None and srv.watcher.mode is not None, "watch")
    live: Snapshot | None = srv.snapshot
    port = srv.settings.sockets[0].port

    await asyncio.to_thread(private_postgres.stop)
    await eventually(lambda: not srv.db.reachable, "the outage to be noticed")
    state = await status(srv)
    assert state["reachable"] is False and state["error"]
    assert (await exchange(options(port, "z9hG4bKo2"), port)).startswith(b"SIP/2.0 200 OK")
    result = await srv.reload()
    assert not result.ok and "database unreachable" in result.message
    assert srv.snapshot is live

    await asyncio.to_thread(private_postgres.start)
    execute(url, RULE.format(prefix="46"))  # a change made while pks could not see it
    await eventually(lambda: srv.db.reachable, "the database to be back", timeout=20)
    await eventually(lambda: rules(srv) == 1 + (1 if triggers else 0), "the pending change")
    messages = [r.getMessage() for r in caplog.records]
    assert sum("database unreachable (" in m for m in messages) == 1, messages
    assert sum("database reachable again" in m for m in messages) == 1, messages
    execute(url, RULE.format(prefix="47"))  # and later changes still arrive
    await eventually(lambda: rules(srv) == 2 + (1 if triggers else 0), "a later change")
