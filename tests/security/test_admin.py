"""The admin API's doors, tried as a web page in the operator's browser would (cross-site
requests, DNS rebinding) and as a local user without the token would (docs/security.md,
"Admin API"). The real server in the test process, its API over loopback HTTP; every refused
request is shown to change nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pks.config import ConfigError, Settings
from pks.db.engine import make_engine
from pks.provision.transfer import import_tables
from pks.server import Server
from servers import free_port, running_server

HOST = "127.0.0.54"
SEED = Path(__file__).parents[1] / "cli" / "seed"
GATEWAY = "sip:1.1.1.1:5060"  # set 23 of the seed
TOKEN = "s3cret-admin-token"
JSON = {"Content-Type": "application/json"}
DISABLE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "dispatcher.set_state",
    "params": ["d", 23, GATEWAY],
}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'pks.db'}"
    engine = make_engine(url)
    import_tables(
        engine,
        {
            "address": (SEED / "address").read_text(),
            "dispatcher": (SEED / "dispatcher").read_text(),
        },
    )
    engine.dispose()
    return url


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[Server]:
    """No token: the default, an API on loopback."""
    async with running_server(f"udp:{HOST}:{free_port(HOST)};name=ipbx", db_url) as srv:
        yield srv


@pytest.fixture
async def guarded(db_url: str) -> AsyncIterator[Server]:
    """PKS_ADMIN_TOKEN set (on loopback), and a name of a reverse proxy in PKS_ADMIN_HOSTS."""
    listen = f"udp:{HOST}:{free_port(HOST)};name=ipbx"
    async with running_server(
        listen, db_url, admin_token=TOKEN, admin_hosts="admin.example.net"
    ) as srv:
        yield srv


def base(server: Server) -> str:
    return f"http://{server.settings.admin_listen}"


async def send(server: Server, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base(server), timeout=30) as client:
        resp = await client.request(method, path, **kwargs)
    assert not [h for h in resp.headers if h.lower().startswith("access-control-")]  # no CORS
    return resp


async def flags(server: Server) -> str:
    """The gateway's flags, read by a request the API accepts."""
    auth = {"Authorization": f"Bearer {server.settings.admin_token}"}
    body = {"jsonrpc": "2.0", "id": 2, "method": "dispatcher.list", "params": []}
    resp = await send(
        server, "POST", "/RPC", json=body, headers=auth if server.settings.admin_token else {}
    )
    assert resp.status_code == 200, resp.text
    sets = {r["SET"]["ID"]: r["SET"] for r in resp.json()["result"]["RECORDS"]}
    return str(sets[23]["TARGETS"][0]["DEST"]["FLAGS"])


async def test_text_plain_json_rpc_is_refused_and_changes_nothing(server: Server) -> None:
    """A page's ``fetch(url, {method: "POST", mode: "no-cors", body: JSON})``: text/plain
    needs no CORS preflight, so the browser sends it; the API refuses it unread."""
    before = await flags(server)
    for content_type in ("text/plain", "text/plain;charset=UTF-8", None):
        headers = {} if content_type is None else {"Content-Type": content_type}
        resp = await send(server, "POST", "/RPC", content=json.dumps(DISABLE), headers=headers)
        assert resp.status_code == 415, resp.text
        assert "Content-Type: application/json" in resp.json()["detail"]
    assert await flags(server) == before == "AX"


async def test_form_posts_are_refused(server: Server) -> None:
    """A page's ``<form method=post>`` to the RPC, a REST write or a reload."""
    before = await flags(server)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    export = (await send(server, "GET", "/api/v1/export")).json()
    for path, content in (
        ("/RPC", json.dumps(DISABLE)),
        ("/reload", ""),
        ("/api/v1/address", "grp=1&ip_addr=6.6.6.6&mask=32&port=0"),
    ):
        resp = await send(server, "POST", path, content=content, headers=form)
        assert resp.status_code == 415, (path, resp.text)
    multipart = await send(server, "POST", "/RPC", files={"x": ("x.json", json.dumps(DISABLE))})
    assert multipart.status_code == 415
    assert (await send(server, "DELETE", "/api/v1/address/1")).status_code == 415
    assert await flags(server) == before
    assert (await send(server, "GET", "/api/v1/export")).json() == export
    assert server.last_reload is None  # no reload was made
    resp = await send(server, "POST", "/reload", headers=JSON)  # the same, as JSON, is served
    assert resp.status_code == 200 and server.last_reload is not None


async def test_a_rebound_host_name_is_refused(server: Server) -> None:
    """DNS rebinding: the page's own name, re-pointed at 127.0.0.1, in the Host header."""
    port = server.settings.admin_address.port
    before = await flags(server)
    for host in (
        "rebind.evil.example",
        f"rebind.evil.example:{port}",
        f"127.0.0.2:{port}",
        f"localhost:{port + 1}",
        "",
    ):
        resp = await send(server, "GET", "/status", headers={"Host": host})
        assert resp.status_code == 421, (host, resp.text)
        rpc = await send(server, "POST", "/RPC", json=DISABLE, headers={"Host": host})
        assert rpc.status_code == 421
    assert await flags(server) == before
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert (await send(server, "GET", "/status", headers={"Host": host})).status_code == 200


async def test_a_foreign_origin_is_refused(server: Server) -> None:
    """Whatever a page sends (its preflight included), a browser names its origin."""
    port = server.settings.admin_address.port
    before = await flags(server)
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": f"http://localhost:{port + 1}"},
        {"Origin": "null"},  # a sandboxed frame, a local file
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        resp = await send(server, "POST", "/RPC", json=DISABLE, headers=headers)
        assert resp.status_code == 403, (headers, resp.text)
        read = await send(server, "GET", "/api/v1/export", headers=headers)
        assert read.status_code == 403
    preflight = await send(
        server,
        "OPTIONS",
        "/RPC",
        headers={
            "Origin": "http://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert preflight.status_code == 403
    assert await flags(server) == before
    # the API's own pages (/docs) send their own origin: served
    for origin in (f"http://127.0.0.1:{port}", f"https://127.0.0.1:{port}"):
        own = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
        assert (await send(server, "GET", "/status", headers=own)).status_code == 200


async def test_the_token_is_required_on_loopback(guarded: Server) -> None:
    before = await flags(guarded)
    for auth in (
        None,
        "Bearer wrong",
        f"Bearer {TOKEN[:-1]}X",
        f"bearer {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN}x",
        f"Bearer  {TOKEN}",
    ):
        headers = {**JSON, **({} if auth is None else {"Authorization": auth})}
        resp = await send(guarded, "POST", "/RPC", json=DISABLE, headers=headers)
        assert resp.status_code == 401, (auth, resp.text)
        assert resp.headers["www-authenticate"] == "Bearer"
        assert (await send(guarded, "GET", "/status", headers=headers)).status_code == 401
    assert await flags(guarded) == before


async def test_the_right_token_is_accepted(guarded: Server) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert (await send(guarded, "GET", "/status", headers=auth)).status_code == 200
    resp = await send(guarded, "POST", "/RPC", json=DISABLE, headers=auth)
    assert resp.json()["result"] == "Ok. Dispatcher state updated."
    assert (await flags(guarded)).startswith("D")
    # a name of PKS_ADMIN_HOSTS (a reverse proxy in front of the API), on any port
    named = {**auth, "Host": "admin.example.net"}
    assert (await send(guarded, "GET", "/status", headers=named)).status_code == 200
    assert (
        await send(guarded, "GET", "/status", headers={**auth, "Host": "example.net"})
    ).status_code == 421


def pks(server: Server, *args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
    env |= {"PKS_ADMIN_LISTEN": server.settings.admin_listen, "PKS_DB_URL": "sqlite:///:memory:"}
    if token is not None:
        env["PKS_ADMIN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "pks", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_the_cli_sends_the_token(guarded: Server) -> None:
    """``pks`` reads PKS_ADMIN_TOKEN as the proxy does: an operator's commands keep working
    (a write, a body-less write, a read); without it they are refused."""
    done = await asyncio.to_thread(
        pks, guarded, "dispatcher", "set-state", "d", "23", GATEWAY, token=TOKEN
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Ok. Dispatcher state updated."
    assert (await flags(guarded)).startswith("D")
    done = await asyncio.to_thread(pks, guarded, "reload", token=TOKEN)
    assert done.returncode == 0 and "reloaded:" in done.stdout, done.stderr
    done = await asyncio.to_thread(pks, guarded, "status", token=TOKEN)
    assert done.returncode == 0 and "routing: loaded" in done.stdout, done.stderr
    for token in (None, "wrong"):
        done = await asyncio.to_thread(pks, guarded, "reload", token=token)
        assert done.returncode != 0 and "bearer token required" in done.stderr


def test_admin_hosts_setting_is_checked() -> None:
    settings = Settings(admin_hosts="Admin.Example.NET., 192.0.2.7:8443, [2001:db8::1]:8091")
    assert settings.admin_host_list == (
        ("admin.example.net", None),
        ("192.0.2.7", 8443),
        ("2001:db8::1", 8091),
    )
    assert Settings(admin_hosts="").admin_host_list == ()
    for bad in ("evil example", "a,,b", "name:0", "[192.0.2.7]:80", "http://x"):
        with pytest.raises(ConfigError, match="PKS_ADMIN_HOSTS"):
            Settings(admin_hosts=bad)


async def test_the_doors_added_since_need_the_token_and_probes_reveal_nothing(
    guarded: Server,
) -> None:
    """/metrics, the ban list and the call records read as much as /status: token required.
    The orchestrator probes need none, answer only GET/HEAD and say a state and two booleans
    at most."""
    for path in ("/metrics", "/api/v1/bans", "/api/v1/blocks", "/api/v1/cdrs"):
        resp = await send(guarded, "GET", path)
        assert resp.status_code == 401, (path, resp.text)
    ban = {"address": "203.0.113.9", "reason": "x"}
    resp = await send(guarded, "POST", "/api/v1/bans", json=ban)
    assert resp.status_code == 401
    for path in ("/health/live", "/health/ready"):
        resp = await send(guarded, "GET", path, headers={"Host": "rebind.evil.example"})
        said = resp.json()
        assert resp.status_code == 200 and set(said) <= {
            "status",
            "routing_loaded",
            "sockets_bound",
        }
        assert [v for k, v in said.items() if k != "status"] in ([], [True, True]), said
        assert (await send(guarded, "POST", path, headers=JSON)).status_code in (401, 405)
