"""The optional native send thread (pks.transport._sendq): in order, failures given back, no
reference kept. Skipped where the accelerator is not built (the pure-Python pass)."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from pks.config import parse_listen
from pks.net import Address, Send
from pks.transport import Transport

sendq = pytest.importorskip("pks.transport._sendq", reason="accelerator not built")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(our socket, the peer) on 127.0.0.1."""
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ours.bind(("127.0.0.1", 0))
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    yield ours, peer
    ours.close()
    peer.close()


def _receive(peer: socket.socket, ours: socket.socket) -> bytes:
    """The next datagram from our socket (a stray one from another test's port is skipped)."""
    for _ in range(100):
        data, source = peer.recvfrom(65535)
        if source == ours.getsockname():
            return data
    raise AssertionError("only stray datagrams")


def _wait_event(queue: object) -> None:
    ready, _, _ = select.select([queue.event_fd], [], [], 5)  # type: ignore[attr-defined]
    assert ready, "the send thread never reported"


def _failed_objects(queue: object, answer: object) -> list[object]:
    """The objects of the failures a send gave back at once, or else after the thread's event."""
    if answer is True:
        _wait_event(queue)
        answer = queue.reap()  # type: ignore[attr-defined]
    assert isinstance(answer, list)
    assert all(errno != 0 for _, errno in answer)
    return [obj for obj, _ in answer]


def _send_all(queue: object, datagrams: list[bytes], dest: tuple[str, int]) -> None:
    for data in datagrams:
        assert queue.send(data, data, dest[0], dest[1]) is True  # type: ignore[attr-defined]


def test_quiet_send_sends_itself(pair) -> None:
    """Fewer sends than a busy window's (50 in 10 ms), the thread idle: ``send`` sends itself."""
    ours, peer = pair
    queue = sendq.SendQueue(ours.fileno())
    dest = peer.getsockname()
    for i in range(9):  # until the thread waits (it may still be starting): ≤ 5 sends per 10 ms
        before = queue.queued
        _send_all(queue, [b"warm-up %d" % i], dest)
        assert _receive(peer, ours) == b"warm-up %d" % i
        if queue.queued == before:
            break
        time.sleep(0.002)
    before = queue.queued
    assert before < 9, "the send thread never went idle"
    sent = [b"msg %d " % i + b"x" * (i % 300) for i in range(40)]
    _send_all(queue, sent, dest)
    assert [_receive(peer, ours) for _ in sent] == sent
    assert queue.queued == before  # none of them through the thread
    assert queue.close() is None


def test_busy_sends_go_through_the_thread_in_order(pair) -> None:
    """Bursts until a busy window hands the sends to the thread; order holds across the switch."""
    ours, peer = pair
    queue = sendq.SendQueue(ours.fileno())
    dest = peer.getsockname()
    deadline = time.monotonic() + 10
    n = 0
    while queue.queued == 0 and time.monotonic() < deadline:
        burst = [b"burst %d" % (n + i) for i in range(60)]
        n += len(burst)
        _send_all(queue, burst, dest)
        assert [_receive(peer, ours) for _ in burst] == burst
    assert queue.queued > 0, "the thread never took over"
    sent = [b"msg %d " % i + b"x" * (i % 300) for i in range(400)]
    _send_all(queue, sent, dest)  # just after a busy window: the thread's, all or most
    assert [_receive(peer, ours) for _ in sent] == sent
    assert queue.close() is None


def test_failures_come_back_with_their_object_and_errno(pair) -> None:
    ours, peer = pair
    queue = sendq.SendQueue(ours.fileno())
    bad, good = object(), object()
    before = sys.getrefcount(bad)
    answer = queue.send(bad, b"x", "::1", 5060)  # IPv6 destination, IPv4 socket
    assert _failed_objects(queue, answer) == [bad]
    del answer
    assert sys.getrefcount(bad) == before  # released once given back
    assert queue.send(good, b"y", *peer.getsockname()) is True
    assert _receive(peer, ours) == b"y"  # the failure did not stop the queue
    assert queue.reap() is None  # given back once
    assert queue.close() is None


def test_host_names_and_closed_queues_are_refused(pair) -> None:
    ours, _ = pair
    queue = sendq.SendQueue(ours.fileno())
    assert queue.send(object(), b"x", "gw.example", 5060) is False  # not queued
    with pytest.raises(ValueError):
        queue.send(object(), b"x", "127.0.0.1", 0)
    queue.close()
    with pytest.raises(ValueError):
        queue.send(object(), b"x", "127.0.0.1", 5060)


async def test_transport_uses_it_unless_turned_off() -> None:
    for send_thread in (True, False):
        transport = Transport(send_thread=send_thread)

        def ignore(*args: object) -> None:
            pass

        await transport.start(parse_listen("udp:127.0.0.1:0"), ignore, ignore)
        try:
            endpoint = transport._endpoints[0]
            assert (endpoint._queue is not None) is send_thread
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.bind(("127.0.0.1", 0))
            peer.settimeout(5)
            transport.send(Send(b"hello", Address(*peer.getsockname()), transport.bound[0]))
            assert peer.recvfrom(100)[0] == b"hello"
            peer.close()
        finally:
            await transport.close()


def test_the_datagram_is_held_by_the_queue_not_only_by_its_object(pair) -> None:
    """The thread reads a datagram's bytes after ``send`` returned: the queue holds them itself
    (an object that does not hold its bytes, or no longer does, must not free them under it)."""
    ours, peer = pair
    queue = sendq.SendQueue(ours.fileno())
    dest = peer.getsockname()
    deadline = time.monotonic() + 10
    n = 0
    while queue.queued == 0 and time.monotonic() < deadline:
        burst = [b"burst %d " % (n + i) + b"y" * 1000 for i in range(60)]
        n += len(burst)
        for data in burst:
            # a fresh copy, its only reference the argument: freed at once unless queued
            assert queue.send(object(), bytes(bytearray(data)), *dest) is True
        assert [_receive(peer, ours) for _ in burst] == burst
    assert queue.queued > 0, "the thread never took over"
    data = bytes(bytearray(b"z" * 1000))
    before = sys.getrefcount(data)
    answer = queue.send(object(), data, "::1", 5060)  # fails: the queue gives it back
    _failed_objects(queue, answer)
    del answer
    assert sys.getrefcount(data) == before  # released once given back
    assert queue.close() is None


# ---- batched receives (Receiver) ------------------------------------------------------------


def _recv_until(reader: object, sock: socket.socket, count: int) -> list[tuple[bytes, object]]:
    """``count`` datagrams from ``reader.recv()``, as the loop's reader callback takes them."""
    got: list[tuple[bytes, object]] = []
    deadline = time.monotonic() + 5
    while len(got) < count and time.monotonic() < deadline:
        select.select([sock], [], [], 0.5)
        got += reader.recv()  # type: ignore[attr-defined]
    return got


def test_receiver_gives_batches_in_order_with_one_source_object_per_address(pair) -> None:
    ours, peer = pair
    made: list[tuple[str, int]] = []

    def make(host: str, port: int) -> tuple[str, int]:
        made.append((host, port))
        return (host, port)

    reader = sendq.Receiver(ours.fileno(), 1000, make)
    assert reader.recv() == []  # nothing waits: never blocks
    datagrams = [b"m%03d" % i for i in range(100)]  # more than one batch
    for data in datagrams:
        peer.sendto(data, ours.getsockname())
    got = _recv_until(reader, ours, 100)
    assert [data for data, _ in got] == datagrams
    assert {source for _, source in got} == {peer.getsockname()}
    assert made == [peer.getsockname()]  # built once, then taken from the cache
    assert len({id(source) for _, source in got}) == 1
    reader.close()
    with pytest.raises(ValueError):
        reader.recv()


def test_receiver_drops_and_counts_datagrams_over_its_limit(pair) -> None:
    ours, peer = pair
    reader = sendq.Receiver(ours.fileno(), 100, lambda host, port: (host, port))
    for data in (b"a" * 100, b"b" * 101, b"c" * 5000, b"d"):
        peer.sendto(data, ours.getsockname())
    got = _recv_until(reader, ours, 2)
    assert [data for data, _ in got] == [b"a" * 100, b"d"]
    assert reader.too_large == 2
    reader.close()


async def test_transport_reads_in_batches_unless_turned_off() -> None:
    """With the accelerator the endpoint reads with the Receiver (no asyncio transport),
    with PKS_RECV_BATCH=false through the loop: a burst arrives whole and in order either
    way, oversized datagrams counted as before."""
    for recv_batch, send_thread in ((True, True), (True, False), (False, True)):
        await _burst_through(recv_batch, send_thread)


async def _burst_through(recv_batch: bool, send_thread: bool) -> None:
    got: list[tuple[bytes, object]] = []
    transport = Transport(max_message_size=200, recv_batch=recv_batch, send_thread=send_thread)

    def collect(data: bytes, inbound: object) -> None:
        got.append((data, inbound))

    def ignore(*args: object) -> None:
        pass

    await transport.start(parse_listen("udp:127.0.0.1:0"), collect, ignore)
    try:
        endpoint = transport._endpoints[0]
        assert (endpoint._reader is not None) is recv_batch
        assert (endpoint._transport is None) is recv_batch
        assert (endpoint._queue is not None) is send_thread  # else the socket's own sendto
        bound = transport.bound[0]
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(5)
        for i in range(150):
            peer.sendto(b"x%d" % i, (bound.host, bound.port))
        peer.sendto(b"y" * 300, (bound.host, bound.port))
        for _ in range(100):
            if len(got) == 150 and transport.drops["udp_too_large"] == 1:
                break
            await asyncio.sleep(0.02)
        assert [data for data, _ in got] == [b"x%d" % i for i in range(150)]
        assert {inbound.source for _, inbound in got} == {Address(*peer.getsockname())}  # type: ignore[attr-defined]
        assert transport.drops["udp_too_large"] == 1
        transport.send(Send(b"back", Address(*peer.getsockname()), bound))
        assert peer.recvfrom(100)[0] == b"back"
        peer.close()
    finally:
        await transport.close()


def test_held_sends_leave_together_at_flush_in_order(pair) -> None:
    """hold() … flush(): the answers to one batch of received datagrams go out in one
    sendmmsg from the caller (no thread wake-up), in order; failures come back from flush."""
    ours, peer = pair
    queue = sendq.SendQueue(ours.fileno())
    dest = peer.getsockname()
    for _ in range(200):  # until the new thread waits (before: flush hands over to it)
        queue.hold()
        queue.send(object(), b"warm-up", *dest)
        assert queue.flush() is None
        assert _receive(peer, ours) == b"warm-up"
        if queue.flushed:
            break
        time.sleep(0.01)
    flushed, queued = queue.flushed, queue.queued
    queue.hold()
    datagrams = [b"held %d" % i for i in range(100)]  # more than one sendmmsg
    for data in datagrams:
        assert queue.send(object(), data, *dest) is True
    peer.setblocking(False)
    early = []
    with contextlib.suppress(BlockingIOError):
        for _ in range(1000):
            early.append(peer.recvfrom(100)[1])
    peer.setblocking(True)
    assert ours.getsockname() not in early  # nothing left before flush() (strays aside)
    assert queue.flush() is None
    assert [_receive(peer, ours) for _ in datagrams] == datagrams
    assert queue.flushed == flushed + 100 and queue.queued == queued  # sent by flush()
    failing = object()
    queue.hold()
    assert queue.send(failing, b"x", "::1", 5060) is True  # an IPv6 address on an IPv4 socket
    queue.send(object(), b"after", *dest)
    answer = queue.flush()
    assert isinstance(answer, list) and [obj for obj, _ in answer] == [failing]
    assert _receive(peer, ours) == b"after"
    queue.hold()
    queue.send(object(), b"kept at close", *dest)
    assert queue.close() is None  # a held batch still goes out when the queue closes
    assert _receive(peer, ours) == b"kept at close"
