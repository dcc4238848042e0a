"""The optional native send thread (pks.transport._sendq): in order, failures given back, no
reference kept. Skipped where the accelerator is not built (the pure-Python pass)."""

from __future__ import annotations

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
