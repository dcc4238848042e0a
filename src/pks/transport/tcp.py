"""Step ① for TCP: one `TcpConnection` protocol per connection, in either direction.

``data_received`` feeds a `StreamFramer` (RFC 3261 §18.3) and passes each whole message to
``on_message`` with an `Inbound` carrying this connection's id, so a reply or an in-dialog
request can go back on the same connection (RFC 3261 §18.2.2). A CRLFCRLF keep-alive gets its
CRLF pong (RFC 5626 §3.5.1).

Invariants: a connection is in the `ConnectionTable` from the moment it is created (an
outgoing one while it still connects, so later sends queue on it instead of opening a second)
until it is lost. It is closed after ``idle_timeout`` seconds without traffic in either
direction, and at the first framing error: a stream that lost its framing cannot be trusted.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Protocol, cast

from pks.net import Address, Proto, Send, SocketInfo, address_from, inbound
from pks.sip.framing import FramingError, StreamFramer
from pks.transport.callbacks import MessageHandler, SendErrorHandler, deliver

__all__ = ["ConnectionTable", "PeerRegistry", "TcpConnection"]

log = logging.getLogger(__name__)

_PONG = b"\r\n"


class TcpConnection(asyncio.Protocol):
    """One TCP connection of one of our sockets (accepted by it, or opened from its address)."""

    def __init__(
        self,
        table: ConnectionTable,
        socket: SocketInfo,
        peer: Address | None = None,
    ) -> None:
        self.table = table
        self.conn_id = table.new_id()
        self.socket = socket
        self.peer = peer  # None for an accepted connection until connection_made
        self.closed = False
        self._framer = StreamFramer(table.max_message_size)
        self._transport: asyncio.Transport | None = None
        self._pending: list[Send] = []  # sends queued while an outgoing connection connects
        self._loop = asyncio.get_running_loop()
        self._last_activity = self._loop.time()
        self._idle_timer: asyncio.TimerHandle | None = None
        if peer is not None:
            table.add(self)

    def __str__(self) -> str:
        return f"tcp#{self.conn_id} {self.socket}<->{self.peer}"

    # --- asyncio callbacks ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport: no isinstance check here
        self._transport = cast(asyncio.Transport, transport)
        if self.peer is None:
            peername = transport.get_extra_info("peername")
            if peername is None:  # reset before we saw it
                self._transport.close()
                return
            self.peer = address_from(peername)
            self.table.add(self)
        log.debug("%s: connected", self)
        self._touch()
        self._arm_idle_timer()
        pending, self._pending = self._pending, []
        for effect in pending:
            self._transport.write(effect.data)

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            messages = self._framer.feed(data)
        except FramingError as exc:
            self._deliver(exc.messages)
            log.warning("%s: closing, %s", self, exc.reason)
            self.close()
            return
        if self._framer.pings and self._transport is not None:
            self._transport.write(_PONG * self._framer.pings)
        self._deliver(messages)

    def connection_lost(self, exc: Exception | None) -> None:
        log.debug("%s: closed%s", self, f" ({exc})" if exc else "")
        self.closed = True
        self.table.remove(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()

    # --- used by the sender ---

    def write(self, effect: Send) -> None:
        """Send now, or once connected for an outgoing connection still connecting."""
        if self._transport is None:
            self._pending.append(effect)
            return
        self._touch()
        self._transport.write(effect.data)

    def connect_failed(self, reason: str) -> None:
        """The outgoing connection could not be opened: forget it and fail its queued sends."""
        for effect in self.forget():
            self.table.on_send_error(effect, reason)

    def forget(self) -> list[Send]:
        """Drop a connection that never connected; return the sends it had queued."""
        self.closed = True
        self.table.remove(self)
        pending, self._pending = self._pending, []
        return pending

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    # --- internals ---

    def _deliver(self, messages: list[bytes]) -> None:
        if not messages:
            return
        assert self.peer is not None
        received = inbound(self.socket, self.peer, self.conn_id)
        for message in messages:
            deliver(self.table.on_message, message, received)

    def _touch(self) -> None:
        self._last_activity = self._loop.time()

    def _arm_idle_timer(self) -> None:
        # One timer per connection, re-armed only when it fires: traffic just moves
        # _last_activity, so a busy connection costs no timer operations per message.
        deadline = self._last_activity + self.table.idle_timeout
        self._idle_timer = self._loop.call_at(deadline, self._check_idle)

    def _check_idle(self) -> None:
        if self._loop.time() >= self._last_activity + self.table.idle_timeout:
            log.debug("%s: idle for %ss, closing", self, self.table.idle_timeout)
            self.close()
        else:
            self._arm_idle_timer()


class PeerRegistry(Protocol):
    """Worker processes: which process holds the connection to a peer, so that a send
    towards it goes through that connection (``pks.workers.node``)."""

    def claim(self, socket: SocketInfo, peer: Address) -> None: ...
    def release(self, socket: SocketInfo, peer: Address) -> None: ...
    def relay(self, effect: Send) -> bool: ...


class ConnectionTable:
    """Open (and opening) TCP connections by id and by (our socket, peer address).

    ``registry`` (worker processes) is told of every connection added and removed."""

    def __init__(
        self,
        on_message: MessageHandler,
        on_send_error: SendErrorHandler,
        *,
        idle_timeout: float,
        max_message_size: int,
    ) -> None:
        self.on_message = on_message
        self.on_send_error = on_send_error
        self.idle_timeout = idle_timeout
        self.max_message_size = max_message_size
        self._ids = itertools.count(1)
        self._by_id: dict[int, TcpConnection] = {}
        self._by_peer: dict[tuple[tuple[Proto, str, int], Address], TcpConnection] = {}
        self.registry: PeerRegistry | None = None

    def new_id(self) -> int:
        return next(self._ids)

    def add(self, conn: TcpConnection) -> None:
        assert conn.peer is not None
        self._by_id[conn.conn_id] = conn
        self._by_peer[(conn.socket.key, conn.peer)] = conn
        if self.registry is not None:
            self.registry.claim(conn.socket, conn.peer)

    def remove(self, conn: TcpConnection) -> None:
        self._by_id.pop(conn.conn_id, None)
        if conn.peer is None:  # an accepted connection reset before it was registered
            return
        key = (conn.socket.key, conn.peer)
        if self._by_peer.get(key) is conn:  # a newer connection may have taken the key
            del self._by_peer[key]
            if self.registry is not None:
                self.registry.release(conn.socket, conn.peer)

    def get(self, conn_id: int) -> TcpConnection | None:
        """The open connection with that id, if any."""
        conn = self._by_id.get(conn_id)
        return None if conn is None or conn.closed else conn

    def find(self, socket: SocketInfo, peer: Address) -> TcpConnection | None:
        """An open connection between that socket of ours and that peer, if any."""
        conn = self._by_peer.get((socket.key, peer))
        return None if conn is None or conn.closed else conn

    def close_all(self) -> None:
        for conn in list(self._by_id.values()):
            conn.close()
