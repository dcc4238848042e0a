"""TCP connections a live dialog needs (pks.forward.pins via ``Transport.pin_connections``),
and sends toward a NAT alias (``Send.connect`` False), on loopback."""

from __future__ import annotations

import asyncio
import time

from pks.forward.pins import DialogPins
from pks.net import Address, Send

TIMEOUT = 5.0
PING = b"\r\n\r\n"


def sip(tag: str) -> bytes:
    return (
        f"OPTIONS sip:{tag}@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-{tag}\r\n"
        f"Call-ID: {tag}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_a_pinned_connection_outlives_the_idle_timeout(start_transport) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0", tcp_idle_timeout=0.1)
    pins = DialogPins(max_duration=60.0)
    transport.pin_connections(pins)
    ours = transport.bound[0]
    reader, writer = await asyncio.open_connection("127.0.0.1", ours.port)
    writer.write(sip("invite"))
    _, inbound = await collector.message()
    assert inbound.conn_id is not None
    loop = asyncio.get_running_loop()
    pins.pin("call-1", "a", "b", (inbound.conn_id,), loop.time())
    await asyncio.sleep(0.4)  # four idle periods
    transport.send(Send(b"still-here", inbound.source, ours))  # found by address: no new one
    assert await asyncio.wait_for(reader.readexactly(10), TIMEOUT) == b"still-here"
    # a keepalive is answered, and the connection goes one idle period after the dialog ends
    writer.write(PING)
    assert await asyncio.wait_for(reader.readexactly(2), TIMEOUT) == b"\r\n"
    pins.unpin("call-1", "b", "a")
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    assert time.monotonic() - started < 1.0
    assert collector.errors.empty()
    writer.close()


async def test_a_send_to_an_alias_without_connection_fails_at_once(start_transport) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0", connect_timeout=5.0)
    ours = transport.bound[0]
    gone = Address("127.0.0.1", 9)  # would be refused; an address behind NAT would hang
    effect = Send(b"BYE", gone, ours, 12345, False)
    started = time.monotonic()
    transport.send(effect)
    failed, reason = await collector.error()
    assert failed is effect and "no open connection" in reason
    assert time.monotonic() - started < 0.5


async def test_a_send_to_an_alias_reuses_the_peers_connection(start_transport) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0")
    ours = transport.bound[0]
    reader, writer = await asyncio.open_connection("127.0.0.1", ours.port)
    writer.write(sip("register"))
    _, inbound = await collector.message()
    transport.send(Send(b"BYE", inbound.source, ours, None, False))
    assert await asyncio.wait_for(reader.readexactly(3), TIMEOUT) == b"BYE"
    assert collector.errors.empty()
    writer.close()
