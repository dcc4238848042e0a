"""The TCP doors of the edge, tried as an attacker would (docs/security.md, "TCP bounds").

The gate, the per-source cap and the message deadline are tried on a real in-process server
(settings → transport → the proxy's source gate → the counters of the instance); the output cap
on the transport alone, since the proxy answers a flood of requests long before its queue for
one peer reaches the cap. Distinct 127.x addresses are distinct hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dbs import execute
from pks.config import Settings
from pks.db import make_engine, migrate
from pks.net import Inbound, Send
from pks.server import Server
from pks.transport import Transport
from servers import free_tcp_port

PROXY = "127.0.0.51"
PEER = "127.0.0.52"  # in the address table
STRANGER = "127.0.0.53"  # in no table
TIMEOUT = 5.0


def options(port: int, tag: str) -> bytes:
    return (
        f"OPTIONS sip:{PROXY}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {PEER}:5999;branch=z9hG4bK{tag}\r\n"
        f"From: <sip:mon@{PEER}>;tag=1\r\nTo: <sip:{PROXY}>\r\nCall-ID: {tag}\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    url = f"sqlite:///{tmp_path / 'pks.db'}"
    engine = make_engine(url)
    migrate.init(engine)
    engine.dispose()
    execute(
        url, f"INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '{PEER}', 32, 0, 'p')"
    )
    settings = Settings(
        listen=f"tcp:{PROXY}:{free_tcp_port(PROXY)}",
        db_url=url,
        admin_listen=f"127.0.0.1:{free_tcp_port()}",
        ds_ping_interval=0,
        tcp_max_per_source=4,
        tcp_message_timeout=0.2,
    )
    srv = Server(settings)
    await asyncio.wait_for(srv.start(), 10)
    try:
        yield srv
    finally:
        await srv.close()


def port_of(server: Server) -> int:
    assert server.transport is not None
    return server.transport.bound[0].port


async def connect(port: int, source: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(
        asyncio.open_connection(PROXY, port, local_addr=(source, 0)), TIMEOUT
    )


async def answered(reader: asyncio.StreamReader) -> bytes:
    """The status line of the proxy's answer."""
    return await asyncio.wait_for(reader.readline(), TIMEOUT)


async def cut(reader: asyncio.StreamReader) -> bool:
    """The proxy closed (or reset) the connection without a byte for us."""
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    except ConnectionError:
        return True


async def drops(server: Server) -> dict[str, int]:
    stats, _ = await server.transaction_stats()
    return {k: v for k, v in stats.items() if k.startswith("tcp_")}


async def test_a_stranger_is_closed_before_a_byte_is_read(server: Server) -> None:
    port = port_of(server)
    reader, writer = await connect(port, STRANGER)
    writer.write(options(port, "stranger"))
    assert await cut(reader)
    writer.close()
    assert await drops(server) == {"tcp_not_admitted": 1}
    assert server.proxy is not None and server.proxy.stats["requests"] == 0  # nothing parsed
    admin = server.settings.admin_address
    async with httpx.AsyncClient(base_url=f"http://{admin.host}:{admin.port}") as api:
        status = (await api.get("/status")).json()
    assert status["tcp_drops"] == {
        "tcp_not_admitted": 1,
        "tcp_over_total": 0,
        "tcp_over_per_source": 0,
        "tcp_message_timeout": 0,
        "tcp_output_cap": 0,
    }

    reader, writer = await connect(port, PEER)  # a known peer is served
    writer.write(options(port, "peer"))
    assert await answered(reader) == b"SIP/2.0 200 OK\r\n"
    writer.close()


async def test_many_connections_from_one_source_are_capped(server: Server) -> None:
    port = port_of(server)
    held = []
    for i in range(4):
        reader, writer = await connect(port, PEER)
        writer.write(options(port, f"c{i}"))
        assert await answered(reader) == b"SIP/2.0 200 OK\r\n"
        held.append(writer)
    for i in range(6):
        reader, writer = await connect(port, PEER)
        writer.write(options(port, f"over{i}"))
        assert await cut(reader)
        writer.close()
    assert await drops(server) == {"tcp_over_per_source": 6}
    for writer in held:
        writer.close()


async def test_a_trickled_message_is_cut_at_the_deadline(server: Server) -> None:
    port = port_of(server)
    reader, writer = await connect(port, PEER)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with contextlib.suppress(ConnectionError):
        for byte in options(port, "slowloris"):  # one byte every 20 ms: 6 s for the message
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)
    assert await cut(reader)
    assert loop.time() - started < 1.0  # the 0.2 s deadline, not the end of the trickle
    writer.close()
    assert await drops(server) == {"tcp_message_timeout": 1}


async def test_a_peer_that_does_not_read_is_cut_and_the_send_fails() -> None:
    failed: asyncio.Queue[tuple[Send, str]] = asyncio.Queue()
    received: asyncio.Queue[Inbound] = asyncio.Queue()
    transport = Transport(tcp_max_output=65536)
    await transport.start(
        Settings(listen=f"tcp:{PROXY}:0").sockets,
        lambda data, inbound: received.put_nowait(inbound),
        lambda send, reason: failed.put_nowait((send, reason)),
    )
    try:
        port = transport.bound[0].port
        _, writer = await connect(port, PEER)
        writer.transport.pause_reading()  # from now on the peer reads nothing
        writer.write(options(port, "hello"))
        inbound = await asyncio.wait_for(received.get(), TIMEOUT)
        chunk = b"x" * 32768
        for _ in range(1000):  # the kernel's buffers fill first, then ours up to the cap
            send = Send(chunk, inbound.source, inbound.socket, inbound.conn_id)
            transport.send(send)
            if transport.drops:
                break
        failing, reason = await asyncio.wait_for(failed.get(), TIMEOUT)
        assert failing is send and "does not read" in reason
        assert transport.drops == {"tcp_output_cap": 1}
        writer.close()
    finally:
        await transport.close()
