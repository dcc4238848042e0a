"""The TCP bounds of pks.transport on loopback: connections in all and per source, the admit
gate, the deadline of a message once begun, the cap on output queued for a peer, the drop
counters and their summary line. Distinct 127.x addresses are distinct hosts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from pks.net import Address, Send
from pks.transport import tcp

TIMEOUT = 5.0


def sip(tag: str, body: bytes = b"") -> bytes:
    return (
        f"OPTIONS sip:{tag}@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK-{tag}\r\n"
        f"Call-ID: {tag}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def writers() -> AsyncIterator[list[asyncio.StreamWriter]]:
    """Client connections to close at the end of the test."""
    opened: list[asyncio.StreamWriter] = []
    yield opened
    for writer in opened:
        writer.close()


async def connect(
    port: int, writers: list[asyncio.StreamWriter], source: str = "127.0.0.1"
) -> Stream:
    stream = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), TIMEOUT
    )
    writers.append(stream[1])
    return stream


async def served(stream: Stream, collector, tag: str) -> None:
    """A message sent on ``stream`` reaches the proxy: the connection was accepted."""
    stream[1].write(sip(tag))
    data, _ = await collector.message()
    assert data == sip(tag)


async def trickle(writer: asyncio.StreamWriter, message: bytes) -> None:
    """One byte every 20 ms (the whole message would take seconds), until the proxy cuts."""
    for byte in message:
        if writer.is_closing():
            return
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except (ConnectionError, RuntimeError):  # the reset; uvloop: "the handler is closed"
            return
        await asyncio.sleep(0.02)


async def assert_cut(reader: asyncio.StreamReader) -> None:
    """The proxy closed (or reset) the connection."""
    try:
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
    except ConnectionError:  # reset, or a write of ours hit the reset
        return
    assert data == b""


# --- connections per source and in all ---------------------------------------------------


async def test_over_the_per_source_cap_a_connection_is_closed_at_once(
    start_transport, writers
) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0", tcp_max_per_source=2)
    port = transport.bound[0].port
    first = await connect(port, writers)
    await served(first, collector, "one")
    await served(await connect(port, writers), collector, "two")

    third = await connect(port, writers)
    third[1].write(sip("three"))
    await assert_cut(third[0])
    assert collector.messages.empty()  # nothing of it was read
    assert transport.drops == {"tcp_over_per_source": 1}

    # another host is not affected; a closed connection gives its place back
    await served(await connect(port, writers, "127.0.0.2"), collector, "other-host")
    first[1].close()
    await first[1].wait_closed()
    for attempt in range(50):  # until the proxy has seen the close (bounded)
        again = await connect(port, writers)
        again[1].write(sip(f"again{attempt}"))
        try:
            data, _ = await asyncio.wait_for(collector.messages.get(), 0.2)
        except TimeoutError:
            continue
        assert data == sip(f"again{attempt}")
        break
    else:
        pytest.fail("the closed connection's place was never given back")


async def test_over_the_total_cap_a_connection_is_closed_at_once(start_transport, writers) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0", tcp_max_connections=2)
    port = transport.bound[0].port
    await served(await connect(port, writers, "127.0.0.1"), collector, "one")
    await served(await connect(port, writers, "127.0.0.2"), collector, "two")
    reader, writer = await connect(port, writers, "127.0.0.3")
    writer.write(sip("three"))
    await assert_cut(reader)
    assert collector.messages.empty()
    assert transport.drops == {"tcp_over_total": 1}


async def test_our_connections_count_toward_the_total(start_transport, writers) -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    gateway = Address("127.0.0.1", listener.sockets[0].getsockname()[1])
    try:
        transport, collector = await start_transport(
            "tcp:127.0.0.1:0", tcp_max_connections=1, tcp_max_per_source=1
        )
        ours = transport.bound[0]
        transport.send(Send(sip("out"), gateway, ours))  # opens our one connection
        reader, writer = await connect(ours.port, writers)
        writer.write(sip("in"))
        await assert_cut(reader)
        assert transport.drops == {"tcp_over_total": 1}
        # and with the table full, a send to a new destination fails instead of connecting
        elsewhere = Send(sip("elsewhere"), Address("127.0.0.2", gateway.port), ours)
        transport.send(elsewhere)
        failed, reason = await collector.error()
        assert failed is elsewhere and "not opened" in reason
        assert transport.drops == {"tcp_over_total": 2}
    finally:
        listener.close()


# --- the admit gate --------------------------------------------------------------------------


async def test_a_host_not_admitted_is_closed_before_anything_is_read(
    start_transport, writers, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[str] = []

    def admit(host: str) -> bool:
        asked.append(host)
        return host != "127.0.0.2"

    transport, collector = await start_transport("tcp:127.0.0.1:0", admit=admit)
    port = transport.bound[0].port
    with caplog.at_level(logging.DEBUG, logger="pks.transport"):
        for _ in range(3):
            reader, writer = await connect(port, writers, "127.0.0.2")
            writer.write(sip("stranger"))
            await assert_cut(reader)
    assert not caplog.records  # no line per connection
    assert collector.messages.empty()
    assert transport.drops == {"tcp_not_admitted": 3}
    await served(await connect(port, writers, "127.0.0.1"), collector, "known")
    assert asked == ["127.0.0.2"] * 3 + ["127.0.0.1"]


async def test_a_failing_gate_refuses_and_says_so_once(
    start_transport, writers, caplog: pytest.LogCaptureFixture
) -> None:
    def admit(host: str) -> bool:
        raise RuntimeError("gate bug")

    transport, _ = await start_transport("tcp:127.0.0.1:0", admit=admit)
    with caplog.at_level(logging.ERROR, logger="pks.transport"):
        for _ in range(2):
            reader, writer = await connect(transport.bound[0].port, writers)
            writer.write(sip("x"))
            await assert_cut(reader)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "admit(127.0.0.1) failed; connection refused"
    ]
    assert transport.drops == {"tcp_not_admitted": 2}


# --- the message deadline --------------------------------------------------------------------


async def test_a_trickled_message_is_cut_at_the_deadline(start_transport, writers) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0", tcp_message_timeout=0.2)
    reader, writer = await connect(transport.bound[0].port, writers)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await trickle(writer, sip("slow"))
    await assert_cut(reader)
    assert loop.time() - started < 1.0
    assert collector.messages.empty()
    assert transport.drops == {"tcp_message_timeout": 1}


async def test_partial_bytes_do_not_keep_an_idle_connection(start_transport, writers) -> None:
    """The idle timer is not reset by the later bytes of a message begun (a trickle)."""
    transport, _ = await start_transport(
        "tcp:127.0.0.1:0", tcp_idle_timeout=0.2, tcp_message_timeout=60
    )
    reader, writer = await connect(transport.bound[0].port, writers)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await trickle(writer, sip("slow"))
    await assert_cut(reader)
    assert loop.time() - started < 1.0
    assert not transport.drops  # the idle timeout, not a bound


async def test_messages_arriving_in_pieces_within_the_deadline_are_served(
    start_transport, writers
) -> None:
    """A busy connection always holds part of the next message: each message has its own
    deadline, and slow whole messages are never cut."""
    transport, collector = await start_transport("tcp:127.0.0.1:0", tcp_message_timeout=0.2)
    _, writer = await connect(transport.bound[0].port, writers)
    stream = b"".join(sip(f"m{i}") for i in range(12))
    size = len(sip("m0"))
    # every write but the last ends inside a message; the whole run lasts past the deadline
    cuts = [size // 2 + i * size for i in range(12)] + [len(stream)]
    for start, end in zip([0, *cuts], cuts, strict=False):
        writer.write(stream[start:end])
        await writer.drain()
        await asyncio.sleep(0.04)
    got = [(await collector.message())[0] for _ in range(12)]
    assert got == [sip(f"m{i}") for i in range(12)]
    assert not transport.drops


# --- the output cap --------------------------------------------------------------------------


async def test_a_peer_that_does_not_read_is_cut_at_the_output_cap(start_transport, writers) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0", tcp_max_output=65536)
    _, writer = await connect(transport.bound[0].port, writers)
    writer.transport.pause_reading()  # the peer reads nothing from now on
    writer.write(sip("hello"))
    _, inbound = await collector.message()
    chunk = b"x" * 32768
    for _ in range(1000):  # the kernel's buffers fill first (a few MB at most)
        effect = Send(chunk, inbound.source, inbound.socket, inbound.conn_id)
        transport.send(effect)
        if transport.drops:
            break
    assert transport.drops == {"tcp_output_cap": 1}
    failed, reason = await collector.error()
    assert failed is effect and "does not read" in reason
    # the connection is gone: a send naming it no longer reaches it
    later = Send(b"late", inbound.source, inbound.socket, inbound.conn_id)
    transport.send(later)
    assert (await collector.error())[0] is later  # a new connect to the client's port fails


async def test_sends_queued_while_connecting_are_capped_too(
    start_transport, unanswered: Address
) -> None:
    transport, collector = await start_transport("tcp:127.0.0.1:0", tcp_max_output=65536)
    ours = transport.bound[0]
    first = Send(b"a" * 40000, unanswered, ours)
    second = Send(b"b" * 40000, unanswered, ours)
    transport.send(first)
    transport.send(second)  # 80 000 bytes queued: over the cap
    (one, reason), (two, _) = await collector.error(), await collector.error()
    assert (one, two) == (first, second) and "does not read" in reason
    assert transport.drops == {"tcp_output_cap": 1}


# --- counters and their summary ----------------------------------------------------------------


async def test_drops_are_summed_in_one_line_per_interval(
    start_transport, writers, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tcp, "SUMMARY_INTERVAL", 0.1)
    transport, _ = await start_transport("tcp:127.0.0.1:0", admit=lambda host: False)
    with caplog.at_level(logging.WARNING, logger="pks.transport"):
        for _ in range(3):
            reader, _ = await connect(transport.bound[0].port, writers)
            await assert_cut(reader)
        for _ in range(50):  # bounded wait for the summary
            if caplog.records:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.15)  # no second line without new drops
    assert [r.getMessage() for r in caplog.records] == [
        "TCP connections closed by the edge bounds: tcp_not_admitted 3"
    ]
