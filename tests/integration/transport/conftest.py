"""Shared helpers for the transport tests: real loopback sockets, run on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from pks import loop
from pks.config import parse_listen
from pks.net import Address, Inbound, Send
from pks.transport import Transport

TIMEOUT = 5.0  # bound on every wait; tests normally finish in milliseconds


@pytest.hookimpl(optionalhook=True)
def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    factories = {"asyncio": asyncio.new_event_loop}
    if loop.loop_name() == "uvloop":
        factories["uvloop"] = loop.new_event_loop
    return factories


class Collector:
    """The proxy's side of the transport: records what the callbacks receive."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[bytes, Inbound]] = asyncio.Queue()
        self.errors: asyncio.Queue[tuple[Send, str]] = asyncio.Queue()
        self.explode_on: bytes | None = None  # a message that makes the handler raise

    def on_message(self, data: bytes, inbound: Inbound) -> None:
        if data == self.explode_on:
            raise RuntimeError("handler bug")
        self.messages.put_nowait((data, inbound))

    def on_send_error(self, effect: Send, reason: str) -> None:
        self.errors.put_nowait((effect, reason))

    async def message(self) -> tuple[bytes, Inbound]:
        return await asyncio.wait_for(self.messages.get(), TIMEOUT)

    async def error(self) -> tuple[Send, str]:
        return await asyncio.wait_for(self.errors.get(), TIMEOUT)


StartTransport = Callable[..., Awaitable[tuple[Transport, Collector]]]


@pytest.fixture
async def start_transport() -> AsyncIterator[StartTransport]:
    """``await start_transport(listen, **Transport options)`` → (started transport, collector)."""
    started: list[Transport] = []

    async def start(listen: str, **options: Any) -> tuple[Transport, Collector]:
        transport, collector = Transport(**options), Collector()
        await transport.start(parse_listen(listen), collector.on_message, collector.on_send_error)
        started.append(transport)
        return transport, collector

    yield start
    for transport in started:
        await asyncio.wait_for(transport.close(), TIMEOUT)


@pytest.fixture
def unanswered() -> Iterator[Address]:
    """An address whose SYNs are dropped: a listener with a full backlog that never accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    filler = socket.socket()
    filler.connect(listener.getsockname())  # takes the only backlog slot
    yield Address(*listener.getsockname())
    filler.close()
    listener.close()
