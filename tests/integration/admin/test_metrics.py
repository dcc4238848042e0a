"""``GET /metrics`` of the real server in-process: known SIP traffic over loopback UDP (a
PBX, a gateway answering 486 then 200, a stranger, a malformed datagram, a scanner, a peer
over its max_calls), then the exposition parsed by the Prometheus client's own parser and
every figure checked; the admin guard in front of it (bearer token)."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbs import execute
from pks.db import make_engine, migrate
from pks.server import Server
from servers import free_port, running_server

HOST = "127.0.0.61"  # the proxy
PBX = "127.0.0.62"  # a customer, tag acme, max_calls 1
GATEWAY = "127.0.0.63"  # set 7's gateway (a socket of this test)
DISABLED = "127.0.0.64"  # set 7's second gateway, disabled (flags 4)
STRANGER = "127.0.0.65"
TOKEN = "metrics-token-0123456789"

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def seed(url: str, gateway_port: int) -> None:
    engine = make_engine(url)
    migrate.init(engine)
    engine.dispose()
    execute(
        url,
        f"INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '{PBX}', 32, 0, 'acme')",
        "INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp,"
        " attrs) VALUES (2, 1, 1, '^33', 0, '', '', '7')",
        "INSERT INTO dispatcher (setid, destination, flags, priority) VALUES"
        f" (7, 'sip:{GATEWAY}:{gateway_port}', 0, 10), (7, 'sip:{DISABLED}:5060', 4, 0)",
        "INSERT INTO pks_peer (kind, name, tag, setid, max_calls)"
        " VALUES ('customer', 'acme', 'acme', 7, 1)",
    )


@pytest.fixture
def gateway_port() -> int:
    return free_port(GATEWAY)


@pytest.fixture
async def server(db_url: str, gateway_port: int) -> AsyncIterator[Server]:
    seed(db_url, gateway_port)
    listen = f"udp:{HOST}:{free_port(HOST)}"
    async with running_server(listen, db_url, admin_token=TOKEN) as srv:
        yield srv


def udp(host: str, port: int = 0) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, port))
    s.setblocking(False)
    return s


def invite(port: int, call_id: str, user_agent: str = "pbx") -> bytes:
    return (
        f"INVITE sip:33123456789@{HOST}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {PBX}:5999;branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:100@{PBX}>;tag=f{call_id}\r\nTo: <sip:33123456789@{HOST}>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:100@{PBX}:5999>\r\n"
        f"User-Agent: {user_agent}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def answer(request: bytes, code: int, reason: str) -> bytes:
    """The gateway's response: Vias, From, Call-ID, CSeq copied, a To tag added."""
    head = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    keep = [h for h in head if h.split(":", 1)[0].lower() in ("via", "from", "call-id", "cseq")]
    to = next(h for h in head if h.lower().startswith("to:"))
    lines = [f"SIP/2.0 {code} {reason}", *keep, f"{to};tag=gw1"]
    lines += [f"Contact: <sip:gw@{GATEWAY}>", "Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode()


async def final_from_proxy(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    while True:
        data = await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)
        if not data.startswith(b"SIP/2.0 100"):
            return data


async def call(server: Server, pbx: socket.socket, gw: socket.socket, call_id: str, code: int):
    """A call from the PBX the gateway answers with ``code``; the final the PBX gets."""
    loop = asyncio.get_running_loop()
    port = server.settings.sockets[0].port
    await loop.sock_sendto(pbx, invite(port, call_id), (HOST, port))
    data, proxy = await asyncio.wait_for(loop.sock_recvfrom(gw, 65535), 5)
    assert data.startswith(b"INVITE "), data
    await loop.sock_sendto(gw, answer(data, code, "Busy Here" if code == 486 else "OK"), proxy)
    if code >= 300:  # the ACK the proxy sends for a failure
        ack, _ = await asyncio.wait_for(loop.sock_recvfrom(gw, 65535), 5)
        assert ack.startswith(b"ACK "), ack
    return await final_from_proxy(pbx)


async def scrape(client: httpx.AsyncClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
async def api(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    base = f"http://{server.settings.admin_listen}"
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        yield client


async def test_metrics_after_known_traffic(
    server: Server, api: httpx.AsyncClient, gateway_port: int
) -> None:
    before = await scrape(api)
    # every gateway from the first second, the disabled one too; nothing counted yet
    gw = {"set": "7", "uri": f"sip:{GATEWAY}:{gateway_port}", "socket": ""}
    off = {"set": "7", "uri": f"sip:{DISABLED}:5060", "socket": ""}
    for key, state in ((gw, "active"), (off, "disabled")):
        for name in ("active", "probing", "inactive", "disabled"):
            got = value(before, "pks_gateway_state", **key, state=name)
            assert got == (1 if name == state else 0), (key, name)
        latency = value(before, "pks_gateway_probe_latency_seconds", **key)
        assert math.isnan(latency)  # probing is off in this test: never answered
    assert value(before, "pks_sip_requests_total", method="INVITE") == 0
    assert value(before, "pks_dropped_total", reason="unknown_source") == 0
    assert value(before, "pks_database_up") == 1
    assert value(before, "pks_workers") == 1
    assert 0 <= value(before, "pks_snapshot_age_seconds") < 60
    assert value(before, "pks_event_loop_lag_seconds", worker="0") >= 0

    loop = asyncio.get_running_loop()
    port = server.settings.sockets[0].port
    with udp(PBX, 5999) as pbx, udp(GATEWAY, gateway_port) as gws, udp(STRANGER) as stranger:
        assert (await call(server, pbx, gws, "c1", 486)).startswith(b"SIP/2.0 486")
        assert (await call(server, pbx, gws, "c2", 200)).startswith(b"SIP/2.0 200")
        # acme holds one call, its max_calls: the next INVITE gets 503 and reaches no one
        await loop.sock_sendto(pbx, invite(port, "c3"), (HOST, port))
        assert (await final_from_proxy(pbx)).startswith(b"SIP/2.0 503")
        await loop.sock_sendto(stranger, invite(port, "s1"), (HOST, port))
        await loop.sock_sendto(pbx, b"INVITE nonsense\r\n\r\n", (HOST, port))
        await loop.sock_sendto(pbx, invite(port, "x1", "friendly-scanner"), (HOST, port))
        await asyncio.sleep(0.3)
    assert (await api.post("/reload")).status_code == 200

    after = await scrape(api)
    assert value(after, "pks_sip_requests_total", method="INVITE") == 4  # the stranger's: not
    assert value(after, "pks_sip_requests_total", method="ACK") == 0  # hop-by-hop, ours
    assert value(after, "pks_sip_responses_received_total", **{"class": "4xx"}) == 1
    assert value(after, "pks_sip_responses_received_total", **{"class": "2xx"}) == 1
    sent = {
        c: value(after, "pks_sip_responses_sent_total", **{"class": c})
        for c in ("2xx", "4xx", "5xx")
    }
    assert sent == {"2xx": 1, "4xx": 1, "5xx": 1}
    tally = {"peer": "acme", "set": "7"}
    assert value(after, "pks_calls_started_total", **tally) == 2
    assert value(after, "pks_calls_answered_total", **tally) == 1
    assert value(after, "pks_calls_failed_total", **tally) == 1
    assert value(after, "pks_calls_cancelled_total", **tally) == 0
    assert value(after, "pks_calls_in_progress") == 1
    assert value(after, "pks_peer_calls_in_progress", peer="acme") == 1
    assert value(after, "pks_peer_max_calls", peer="acme") == 1
    assert value(after, "pks_gateway_calls_in_progress", **gw) == 1
    assert value(after, "pks_gateway_calls_in_progress", **off) == 0
    drops = {
        r: value(after, "pks_dropped_total", reason=r)
        for r in ("unknown_source", "malformed", "scanner", "max_calls", "max_transactions")
    }
    assert drops == {
        "unknown_source": 1,
        "malformed": 1,
        "scanner": 1,
        "max_calls": 1,
        "max_transactions": 0,
    }
    assert value(after, "pks_reloads_total", result="ok") == 1
    assert value(after, "pks_reloads_total", result="failed") == 0
    assert value(after, "pks_reload_duration_seconds_count") == 1
    assert 0 < value(after, "pks_reload_duration_seconds_sum") < 30
    assert value(after, "pks_reload_last_success") == 1
    assert value(after, "pks_transactions") >= 1  # the answered INVITE's server side lingers


async def test_metrics_need_the_token(server: Server) -> None:
    base = f"http://{server.settings.admin_listen}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
