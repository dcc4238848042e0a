"""The batched UDP receive (``pks.transport._sendq.Receiver``, compiled builds): it reads every
datagram before the source check, so what it keeps per source must stay bounded whatever a
flood of spoofed addresses sends. Skipped where the accelerator is not built (pure pass)."""

from __future__ import annotations

import select
import socket
import time

import pytest

sendq = pytest.importorskip("pks.transport._sendq", reason="accelerator not built")


def test_receiver_cache_is_bounded_under_many_sources() -> None:
    """A flood from many source ports overwrites the cache's slots: memory stays bounded and
    every datagram still gets its own source right."""
    ours = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ours.bind(("127.0.0.1", 0))
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # room for all 300
    reader = sendq.Receiver(ours.fileno(), 100, lambda host, port: (host, port))
    senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(300)]
    try:
        for i, s in enumerate(senders):
            s.bind(("127.0.0.1", 0))
            s.sendto(b"%d" % i, ours.getsockname())
        got: list[tuple[bytes, object]] = []
        deadline = time.monotonic() + 5
        while len(got) < 300 and time.monotonic() < deadline:
            select.select([ours], [], [], 0.5)
            got += reader.recv()
        assert [(data, source) for data, source in got] == [
            (b"%d" % i, s.getsockname()) for i, s in enumerate(senders)
        ]
        assert reader.cached <= 256  # 300 sources, a fixed number of slots
    finally:
        for s in senders:
            s.close()
        reader.close()
        ours.close()
    assert reader.cached == 0  # close() forgets them
