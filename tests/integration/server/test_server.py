"""The real server in-process: sockets on loopback, each database engine, reload by
API/CLI/SIGHUP semantics."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dbs import execute
from pks import heap
from pks.db import make_engine, migrate
from pks.server import Server
from servers import free_port, free_tcp_port, running_server

HOST = "127.0.0.41"
PEER = "127.0.0.42"


def seed(url: str) -> None:
    engine = make_engine(url)
    migrate.init(engine)
    engine.dispose()
    execute(
        url,
        f"INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (2, '{PEER}', 32, 0, 'c')",
        "INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp,"
        " attrs) VALUES (1, 1, 1, '^33', 0, '', '', '7')",
        "INSERT INTO dispatcher (setid, destination) VALUES (7, 'sip:127.0.0.43:5060')",
    )


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[Server]:
    seed(db_url)
    async with running_server(f"udp:{HOST}:{free_port(HOST)}", db_url) as srv:
        yield srv


def options(port: int, branch: str) -> bytes:
    return (
        f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {PEER}:5999;branch={branch}\r\n"
        f"From: <sip:mon@{PEER}>;tag=1\r\nTo: <sip:{HOST}>\r\nCall-ID: {branch}\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def exchange(data: bytes, port: int) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((PEER, 5999))
        s.setblocking(False)
        await loop.sock_sendto(s, data, (HOST, port))
        return await asyncio.wait_for(loop.sock_recv(s, 65535), 5)


async def test_options_to_the_proxy_gets_200_over_real_udp(server: Server) -> None:
    port = server.settings.sockets[0].port
    reply = await exchange(options(port, "z9hG4bKo1"), port)
    assert reply.startswith(b"SIP/2.0 200 OK")


async def test_bad_rule_rejects_reload_and_keeps_old_snapshot(server: Server, db_url: str) -> None:
    before = server.snapshot
    execute(
        db_url,
        "INSERT INTO dialplan (id, dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp,"
        " attrs) VALUES (99, 2, 1, 1, '+33[1-9][0-9]+$', 0, '', '', '7')",
    )
    result = await server.reload()
    assert not result.ok and "dialplan" in result.message and "99" in result.message
    assert server.snapshot is before
    execute(db_url, "UPDATE dialplan SET match_exp = '^33' WHERE id = 99")
    result = await server.reload()
    assert result.ok and server.snapshot is not before
    # the new tables are frozen out of the cyclic collector's walks (pks.heap)
    assert gc.get_threshold() == heap.THRESHOLDS
    assert not any(o is server.snapshot for o in gc.get_objects())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_cli_reload_talks_to_the_admin_api(server: Server) -> None:
    env = {**os.environ, "PKS_ADMIN_LISTEN": server.settings.admin_listen}
    before = server.snapshot
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pks",
        "reload",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    assert b"reloaded" in out
    assert server.snapshot is not before
    async with httpx.AsyncClient() as client:
        status = await client.get(f"http://{server.settings.admin_listen}/status")
    assert status.status_code == 200 and status.json()["routing_loaded"] is True


def test_sighup_reloads_a_running_proxy(tmp_path: Path) -> None:
    import signal
    import time

    db = tmp_path / "pks.db"
    seed(f"sqlite:///{db}")
    log = tmp_path / "pks.log"
    env = {
        **os.environ,
        "PKS_LISTEN": f"udp:{HOST}:{free_port(HOST)}",
        "PKS_DB_URL": f"sqlite:///{db}",
        "PKS_ADMIN_LISTEN": f"127.0.0.1:{free_tcp_port()}",
    }
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "pks", "run"], env=env, stderr=sink)
    try:
        for _ in range(200):
            if b"pks: ready" in log.read_bytes() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert b"pks: ready" in log.read_bytes(), log.read_text()
        proc.send_signal(signal.SIGHUP)
        for _ in range(200):
            if b"reloaded:" in log.read_bytes():
                break
            time.sleep(0.05)
        assert b"reloaded:" in log.read_bytes(), log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0
    assert b"pks: stopped" in log.read_bytes()


def test_the_dialog_key_survives_a_restart(tmp_path: Path) -> None:
    from pks.config import Settings
    from pks.server import dialog_secret

    settings = Settings(secret_file=str(tmp_path / "pks.secret"))
    first = dialog_secret(settings)
    assert dialog_secret(settings) == first and len(first) >= 32
    assert (tmp_path / "pks.secret").stat().st_mode & 0o777 == 0o600
    assert dialog_secret(Settings(secret="s" * 20)) == b"s" * 20
