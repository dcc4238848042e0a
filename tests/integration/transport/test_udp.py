"""UDP through pks.transport on loopback: datagrams in with the right Inbound, Send effects out."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator

import pytest

from pks.config import parse_listen
from pks.net import Address, Inbound, Proto, Send
from pks.transport import Transport

TIMEOUT = 5.0


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    """A plain UDP socket on 127.0.0.1 playing the remote gateway."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(TIMEOUT)
    yield sock
    sock.close()


async def receive(sock: socket.socket) -> tuple[bytes, tuple[str, int]]:
    return await asyncio.wait_for(asyncio.to_thread(sock.recvfrom, 65535), TIMEOUT)


def address(sock: socket.socket) -> Address:
    host, port = sock.getsockname()
    return Address(host, port)


async def test_datagram_in_then_reply_out(start_transport, peer: socket.socket) -> None:
    transport, collector = await start_transport("udp:127.0.0.1:0;name=public")
    (ours,) = transport.bound
    assert ours.port != 0 and ours.name == "public"

    peer.sendto(b"OPTIONS sip:x SIP/2.0\r\n\r\n", ("127.0.0.1", ours.port))
    data, inbound = await collector.message()
    assert data == b"OPTIONS sip:x SIP/2.0\r\n\r\n"
    assert inbound == Inbound(ours, address(peer), None)

    transport.send(Send(b"SIP/2.0 200 OK\r\n\r\n", inbound.source, inbound.socket))
    assert await receive(peer) == (b"SIP/2.0 200 OK\r\n\r\n", ("127.0.0.1", ours.port))


async def test_send_naming_the_configured_socket_uses_the_bound_one(
    start_transport, peer: socket.socket
) -> None:
    transport, _ = await start_transport("udp:127.0.0.2:0,udp:127.0.0.3:0")
    configured = parse_listen("udp:127.0.0.3:0")[0]  # port 0, as in PKS_LISTEN
    transport.send(Send(b"hello", address(peer), configured))
    assert await receive(peer) == (b"hello", ("127.0.0.3", transport.bound[1].port))


async def test_bound_ports_and_lookup_by_name(start_transport) -> None:
    transport, _ = await start_transport(
        "udp:127.0.0.1:0;name=public,tcp:127.0.0.1:0;name=public,udp:127.0.0.2:0;name=private"
    )
    assert [(s.proto, s.host, s.name) for s in transport.bound] == [
        (Proto.UDP, "127.0.0.1", "public"),
        (Proto.TCP, "127.0.0.1", "public"),
        (Proto.UDP, "127.0.0.2", "private"),
    ]
    assert all(s.port != 0 for s in transport.bound)
    assert transport.sockets_by_name("public") == tuple(transport.bound[:2])
    assert transport.sockets_by_name("public", Proto.TCP) == (transport.bound[1],)
    assert transport.sockets_by_name("nope") == ()


async def test_sendto_failure_is_reported_not_raised(start_transport) -> None:
    transport, collector = await start_transport("udp:127.0.0.1:0")
    effect = Send(b"x", Address("::1", 5060), transport.bound[0])  # IPv6 dest, IPv4 socket
    transport.send(effect)
    failed, reason = await collector.error()
    assert failed is effect
    assert "::1" in reason
    bad_port = Send(b"x", Address("127.0.0.1", 70000), transport.bound[0])
    transport.send(bad_port)
    assert (await collector.error())[0] is bad_port


async def test_socket_survives_failures_and_handler_errors(
    start_transport, peer: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    transport, collector = await start_transport("udp:127.0.0.1:0", max_message_size=1024)
    port = transport.bound[0].port
    transport.send(Send(b"x", Address("::1", 5060), transport.bound[0]))
    await collector.error()
    collector.explode_on = b"boom"
    with caplog.at_level(logging.ERROR, logger="pks.transport"):
        peer.sendto(b"boom", ("127.0.0.1", port))
        peer.sendto(b"y" * 2000, ("127.0.0.1", port))  # over max_message_size: dropped
        peer.sendto(b"after", ("127.0.0.1", port))
        data, _ = await collector.message()
    assert data == b"after"
    assert "handler bug" in caplog.text and "Traceback" in caplog.text


async def test_start_is_all_or_nothing() -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    transport = Transport()
    try:
        with pytest.raises(OSError, match=f"cannot listen on udp:127.0.0.1:{port}"):
            await transport.start(
                parse_listen(f"udp:127.0.0.2:0,udp:127.0.0.1:{port}"),
                lambda data, inbound: None,
                lambda effect, reason: None,
            )
        assert transport.bound == []
    finally:
        taken.close()
        await transport.close()
