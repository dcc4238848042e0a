"""The orchestrators' probes (docs/deploy.md, "Health probes"): /health/live and
/health/ready answer without the token and whatever the Host, say nothing else, and are the
only doors the guard leaves open; ``python -m pks.admin.healthcheck`` reads them; the server
tells systemd READY=1 once it routes (pks.notify)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI

from pks.admin import healthcheck
from pks.admin.health import build_health
from pks.server import Server
from servers import free_port, running_server

HOST = "127.0.0.57"
TOKEN = "probe-test-token"
READY = {"status": "ready", "routing_loaded": True, "sockets_bound": True}


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[Server]:
    """An API that asks for a token, like one listening beyond loopback must."""
    listen = f"udp:{HOST}:{free_port(HOST)}"
    async with running_server(listen, f"sqlite:///{tmp_path / 'pks.db'}", admin_token=TOKEN) as srv:
        yield srv


async def get(server: Server, method: str, path: str, **kwargs: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://{server.settings.admin_listen}") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("host", [None, "evil.example", "10.1.2.3:8091"])
async def test_probes_need_no_token_and_no_known_host(guarded: Server, host: str | None) -> None:
    headers = {} if host is None else {"Host": host}
    live = await get(guarded, "GET", "/health/live", headers=headers)
    assert (live.status_code, live.json()) == (200, {"status": "live"})
    ready = await get(guarded, "GET", "/health/ready", headers=headers)
    assert (ready.status_code, ready.json()) == (200, READY)
    head = await get(guarded, "HEAD", "/health/ready", headers=headers)
    assert head.status_code == 200


async def test_every_other_door_stays_closed(guarded: Server) -> None:
    assert (await get(guarded, "GET", "/status")).status_code == 401
    assert (await get(guarded, "GET", "/health")).status_code == 401
    assert (await get(guarded, "GET", "/health/ready/")).status_code == 401
    # another method on a probe's path is guarded like any request
    assert (await get(guarded, "POST", "/health/ready")).status_code == 401
    evil = await get(guarded, "GET", "/status", headers={"Host": "evil.example"})
    assert evil.status_code == 421


async def test_not_ready_before_the_tables_and_sockets() -> None:
    instance = SimpleNamespace(snapshot=None, proxy=None)
    app = FastAPI()
    app.include_router(build_health(instance))  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
    assert ready.status_code == 503
    assert ready.json() == {"status": "not ready", "routing_loaded": False, "sockets_bound": False}
    assert live.status_code == 200


async def test_healthcheck_command(guarded: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PKS_ADMIN_LISTEN", guarded.settings.admin_listen)
    assert await asyncio.to_thread(healthcheck.main, ["ready"]) == 0
    assert await asyncio.to_thread(healthcheck.main, ["live"]) == 0
    assert await asyncio.to_thread(healthcheck.main, ["nonsense"]) == 2
    with socket.socket() as closed:  # a port nobody listens on: not running
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setenv("PKS_ADMIN_LISTEN", f"127.0.0.1:{closed.getsockname()[1]}")
        assert await asyncio.to_thread(healthcheck.main, ["ready"]) == 1


def test_healthcheck_asks_loopback_for_a_wildcard_address() -> None:
    settings = SimpleNamespace(admin_address=SimpleNamespace(host="0.0.0.0", port=8091))
    url = healthcheck.probe_url(settings, "ready")  # type: ignore[arg-type]
    assert url == "http://127.0.0.1:8091/health/ready"
    settings.admin_address.host = "::"
    assert healthcheck.probe_url(settings, "live") == "http://[::1]:8091/health/live"  # type: ignore[arg-type]


async def test_systemd_is_told_ready_then_stopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as manager:
        manager.bind(str(path))
        manager.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        listen = f"udp:{HOST}:{free_port(HOST)}"
        async with running_server(listen, f"sqlite:///{tmp_path / 'pks.db'}"):
            ready = manager.recv(4096).decode().split("\n")
        stopping = manager.recv(4096).decode()
    assert ready[0] == "READY=1" and ready[1].startswith(f"STATUS=routing on udp:{HOST}:")
    assert stopping == "STOPPING=1"
