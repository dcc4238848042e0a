"""UDP datagrams over PKS_MAX_MESSAGE_SIZE are dropped before parsing: counted, never logged
one by one (docs/security.md, "Message bounds")."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def peer() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


async def test_oversized_datagrams_are_counted_not_logged(
    start_transport, peer: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    transport, collector = await start_transport("udp:127.0.0.1:0", max_message_size=1024)
    port = transport.bound[0].port
    with caplog.at_level(logging.DEBUG, logger="pks"):
        for _ in range(3):
            peer.sendto(b"y" * 1025, ("127.0.0.1", port))
        peer.sendto(b"x" * 1024, ("127.0.0.1", port))  # at the limit: delivered
        data, _ = await collector.message()
    assert data == b"x" * 1024
    assert transport.drops["udp_too_large"] == 3
    assert not [r for r in caplog.records if r.name.startswith("pks.transport")]
