"""TCP through pks.transport on loopback: framing, connection reuse, source address, timeouts."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from pks.net import Address, Proto, Send, SocketInfo

TIMEOUT = 5.0


def sip(tag: str, body: bytes = b"") -> bytes:
    return (
        f"OPTIONS sip:{tag}@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-{tag}\r\n"
        f"Call-ID: {tag}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def read_exactly(reader: asyncio.StreamReader, count: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(count), TIMEOUT)


async def assert_closed_by_peer(reader: asyncio.StreamReader) -> None:
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)


@dataclass
class PlainServer:
    """A gateway played by a stream server: records each accepted connection."""

    address: Address
    accepted: asyncio.Queue[tuple[Address, asyncio.StreamReader, asyncio.StreamWriter]] = field(
        default_factory=asyncio.Queue
    )

    async def accept(self) -> tuple[Address, asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.wait_for(self.accepted.get(), TIMEOUT)


@pytest.fixture
async def plain_server() -> AsyncIterator[PlainServer]:
    writers: list[asyncio.StreamWriter] = []
    holder: list[PlainServer] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        host, port = writer.get_extra_info("peername")[:2]
        holder[0].accepted.put_nowait((Address(host, port), reader, writer))

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    holder.append(PlainServer(Address("127.0.0.1", server.sockets[0].getsockname()[1])))
    yield holder[0]
    for writer in writers:
        writer.close()
    server.close()
    await asyncio.wait_for(server.wait_closed(), TIMEOUT)


async def test_inbound_stream_is_framed(start_transport) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0;name=public")
    (ours,) = transport.bound
    _, writer = await connect(ours.port)
    client = Address(*writer.get_extra_info("sockname")[:2])
    one, two, three = sip("one"), sip("two", b"v=0\r\n\r\nbody"), sip("three", b"xyz")

    writer.write(one + two)
    first, second = await collector.message(), await collector.message()
    writer.write(three[:25])
    await writer.drain()
    writer.write(three[25:])
    third = await collector.message()

    assert [first[0], second[0], third[0]] == [one, two, three]
    inbound = first[1]
    assert inbound.socket == ours and inbound.source == client and inbound.conn_id is not None
    assert second[1] == third[1] == inbound
    writer.close()


async def test_replies_go_back_on_the_same_connection(start_transport) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0")
    reader, writer = await connect(transport.bound[0].port)
    writer.write(sip("req"))
    _, inbound = await collector.message()

    transport.send(Send(b"by-conn-id", inbound.source, inbound.socket, inbound.conn_id))
    assert await read_exactly(reader, 10) == b"by-conn-id"
    # Without a conn_id, the connection registered under the peer's address is reused.
    transport.send(Send(b"by-address", inbound.source, inbound.socket))
    assert await read_exactly(reader, 10) == b"by-address"
    assert collector.errors.empty()
    writer.close()


async def test_keepalive_ping_gets_a_pong(start_transport) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0")
    reader, writer = await connect(transport.bound[0].port)
    writer.write(b"\r\n\r\n")
    assert await read_exactly(reader, 2) == b"\r\n"
    writer.write(b"\r\n\r\n" + sip("after-ping"))
    assert await read_exactly(reader, 2) == b"\r\n"
    assert (await collector.message())[0] == sip("after-ping")
    writer.close()


async def test_new_destination_opens_a_connection_from_the_sockets_ip(
    start_transport, plain_server: PlainServer
) -> None:
    transport, collector = await start_transport("tcp:127.0.0.2:0;name=a,tcp:127.0.0.3:0;name=b")
    a, b = transport.bound
    transport.send(Send(sip("first"), plain_server.address, a))
    transport.send(Send(sip("queued"), plain_server.address, a))  # sent while connecting
    source, reader, writer = await plain_server.accept()
    assert source.host == "127.0.0.2"
    assert await read_exactly(reader, len(sip("first") + sip("queued"))) == sip("first") + sip(
        "queued"
    )

    # The gateway answers on that connection: it comes in on socket a, with the connection id.
    writer.write(sip("answer"))
    data, inbound = await collector.message()
    assert data == sip("answer")
    assert inbound.socket == a and inbound.source == plain_server.address
    # Later sends reuse the connection (no second accept), also by conn_id.
    transport.send(Send(sip("again"), plain_server.address, a, inbound.conn_id))
    assert await read_exactly(reader, len(sip("again"))) == sip("again")

    transport.send(Send(sip("from-b"), plain_server.address, b))
    source_b, reader_b, _ = await plain_server.accept()
    assert source_b.host == "127.0.0.3"
    assert await read_exactly(reader_b, len(sip("from-b"))) == sip("from-b")
    assert plain_server.accepted.empty() and collector.errors.empty()


async def test_idle_connection_is_closed(start_transport) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0", tcp_idle_timeout=0.05)
    ours = transport.bound[0]
    reader, writer = await connect(ours.port)
    client = Address(*writer.get_extra_info("sockname")[:2])
    await assert_closed_by_peer(reader)
    writer.close()
    # The closed connection is forgotten: a send to the client's address now opens a new
    # connection, which the client's ephemeral port refuses.
    effect = Send(b"late", client, ours)
    transport.send(effect)
    assert (await collector.error())[0] is effect


async def test_framing_error_closes_the_connection(
    start_transport, caplog: pytest.LogCaptureFixture
) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0")
    reader, writer = await connect(transport.bound[0].port)
    no_length = b"OPTIONS sip:x SIP/2.0\r\nCall-ID: bad\r\n\r\n"
    with caplog.at_level(logging.WARNING, logger="pks.transport"):
        writer.write(sip("good") + no_length)
        assert (await collector.message())[0] == sip("good")  # framed before the error
        await assert_closed_by_peer(reader)
    assert "Content-Length missing" in caplog.text
    writer.close()


async def test_handler_error_keeps_the_connection(
    start_transport, caplog: pytest.LogCaptureFixture
) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0")
    collector.explode_on = sip("boom")
    _, writer = await connect(transport.bound[0].port)
    with caplog.at_level(logging.ERROR, logger="pks.transport"):
        writer.write(sip("boom") + sip("fine"))
        assert (await collector.message())[0] == sip("fine")
    assert "handler bug" in caplog.text
    writer.close()


async def test_connect_failure_reports_every_queued_send(start_transport) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0")
    closed = socket.socket()  # bound but not listening: connecting to it is refused
    closed.bind(("127.0.0.1", 0))
    try:
        dest = Address("127.0.0.1", closed.getsockname()[1])
        first = Send(b"one", dest, transport.bound[0])
        second = Send(b"two", dest, transport.bound[0])
        transport.send(first)
        transport.send(second)
        (failed_1, reason), (failed_2, _) = await collector.error(), await collector.error()
    finally:
        closed.close()
    assert (failed_1, failed_2) == (first, second)
    assert f"TCP connect to {dest}" in reason


async def test_send_from_an_unknown_socket_is_reported(start_transport) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0,udp:127.0.0.1:0")
    for proto in Proto:
        effect = Send(b"x", Address("127.0.0.1", 9), SocketInfo("x", proto, "127.0.0.9", 5060))
        transport.send(effect)
        failed, reason = await collector.error()
        assert failed is effect and "not one of our sockets" in reason


async def test_connect_timeout_is_reported(start_transport, unanswered: Address) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0", connect_timeout=0.05)
    effect = Send(b"x", unanswered, transport.bound[0])
    transport.send(effect)
    failed, reason = await collector.error()
    assert failed is effect and "no answer in 0.05s" in reason


async def test_close_abandons_pending_connects_quietly(
    start_transport, unanswered: Address
) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0")
    transport.send(Send(b"x", unanswered, transport.bound[0]))
    await asyncio.wait_for(transport.close(), TIMEOUT)
    await asyncio.sleep(0)
    assert collector.errors.empty()
