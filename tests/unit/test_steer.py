"""The kernel steering program, run by the real kernel on loopback sockets: each datagram
must reach the socket of the worker the Router names as its owner."""

from __future__ import annotations

import asyncio
import random
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pks.net import Address, Inbound, Proto, SocketInfo
from pks.workers import steer
from pks.workers.handoff import Channel, Router, branch_owner, branch_prefix, callid_owner
from pks.workers.shared import SharedStore

HOST = "127.0.0.1"


def _group(count: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    port = 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((HOST, port))
        port = sock.getsockname()[1]
        socks.append(sock)
    return socks


@pytest.fixture
def group3() -> Iterator[list[socket.socket]]:
    socks = _group(3)
    yield socks
    for sock in socks:
        sock.close()


def _landing(socks: list[socket.socket], data: bytes) -> int:
    """Send ``data`` to the group; the index of the socket it reached."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(data, socks[0].getsockname())
    ready, _, _ = select.select(socks, [], [], 2.0)
    assert len(ready) == 1, "datagram not received (or received twice)"
    assert ready[0].recv(65535) == data
    return socks.index(ready[0])


def _request(call_id: str, method: str = "INVITE", pad: int = 0) -> bytes:
    return (
        f"{method} sip:+33612345678@127.0.1.10:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.1.1:5070;branch=z9hG4bK-1-1;rport\r\n"
        f"From: <sip:a@127.0.1.1>;tag=1\r\nTo: <sip:b@127.0.1.10>\r\n"
        f"X-Pad: {'p' * pad}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _response(index: int, status: str = "180 Ringing") -> bytes:
    branch = branch_prefix(index, "beef") + "0123abcd"
    return (
        f"SIP/2.0 {status}\r\n"
        f"Via: SIP/2.0/UDP 127.0.1.10:5060;branch={branch}\r\n"
        "Via: SIP/2.0/UDP 127.0.1.1:5070;branch=z9hG4bK-1-1;rport=5070\r\n"
        "From: <sip:a@127.0.1.1>;tag=1\r\nTo: <sip:b@127.0.1.10>;tag=2\r\n"
        "Call-ID: 12-34@127.0.1.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def test_program_fits() -> None:
    for workers in (1, 2, 3, 64):
        code = steer.program(workers)
        assert len(code) % 8 == 0 and len(code) // 8 <= steer.MAX_INSNS
    with pytest.raises(ValueError):
        steer.program(2, [False, False])


def test_requests_reach_the_call_id_owner(group3: list[socket.socket]) -> None:
    steer.attach(group3[0], steer.program(3))
    rng = random.Random(7)
    seen = set()
    for n in range(60):
        call_id = f"{n}-{rng.getrandbits(32):08x}@127.0.1.1"
        for method, pad in (("INVITE", 0), ("BYE", 300)):
            data = _request(call_id, method, pad)
            owner = callid_owner(data, 3)
            assert owner is not None
            assert _landing(group3, data) == owner, call_id
            seen.add(owner)
    assert seen == {0, 1, 2}


def test_responses_reach_the_branch_owner(group3: list[socket.socket]) -> None:
    steer.attach(group3[0], steer.program(3))
    for index in (0, 1, 2, 2, 1, 0):
        data = _response(index)
        assert branch_owner(data) == index
        assert _landing(group3, data) == index


def test_down_worker_is_skipped(group3: list[socket.socket]) -> None:
    steer.attach(group3[0], steer.program(3, [True, False, True]))
    assert _landing(group3, _response(1)) == 2
    for n in range(40):
        assert _landing(group3, _request(f"{n}-abcdefgh-ijkl@127.0.1.1")) != 1
    # a message it cannot place goes to a live worker too
    for _ in range(20):
        assert _landing(group3, b"\r\n\r\n") != 1


def test_unplaced_messages_still_arrive(group3: list[socket.socket]) -> None:
    """Other spellings, short Call-IDs, a Call-ID beyond the window, keep-alives: a random
    socket (the Router hands them off)."""
    steer.attach(group3[0], steer.program(3))
    odd = [
        b"\r\n",
        _request("short@h"),
        _request("0123456789abcdef-long@h").replace(b"Call-ID", b"i"),
        _request("0123456789abcdef-long@h", pad=steer.REQUEST_WINDOW),
        _request("0123456789abcdef-long@h").replace(b"\nCall-ID", b"\nX-Call-ID"),
        _response(7),
        _response(1).replace(b"pksW", b"pksX"),
    ]
    for data in odd:
        assert 0 <= _landing(group3, data) < 3


def test_router_keeps_steered_messages(group3: list[socket.socket], tmp_path: Path) -> None:
    """What the program delivers to a worker's socket, that worker's Router keeps: its
    channel (real, never opened) is not even asked to hand anything off."""
    steer.attach(group3[0], steer.program(3))
    info = SocketInfo("udp", Proto.UDP, HOST, group3[0].getsockname()[1])
    store_path = SharedStore.create(3, str(tmp_path))
    kept: list[int] = []
    routers = [Router(i, 3) for i in range(3)]
    channels = []
    for i, router in enumerate(routers):
        router.local = lambda data, inbound, i=i: kept.append(i)
        channel = Channel(
            SharedStore(store_path, i),
            [info],
            lambda data, inbound: None,
            lambda op, args: asyncio.sleep(0),
            lambda op, args: None,
        )
        router.channel = channel
        channels.append(channel)
    source = Address("127.0.0.1", 5070)
    for n in range(30):
        for data in (_request(f"call-{n:04d}-0123456789@h"), _response(n % 3)):
            landed = _landing(group3, data)
            routers[landed].on_message(data, Inbound(info, source, None))
            assert kept[-1] == landed
    assert len(kept) == 60 and set(kept) == {0, 1, 2}
    assert [c.sent + c.dropped for c in channels] == [0, 0, 0]
