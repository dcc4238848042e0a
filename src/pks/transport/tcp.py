"""Step ① for TCP: one `TcpConnection` protocol per connection, in either direction.

``data_received`` feeds a `StreamFramer` (RFC 3261 §18.3) and passes each whole message to
``on_message`` with an `Inbound` carrying this connection's id, so a reply or an in-dialog
request can go back on the same connection (RFC 3261 §18.2.2). A CRLFCRLF keep-alive gets its
CRLF pong (RFC 5626 §3.5.1).

Invariants: a connection is in the `ConnectionTable` from the moment it is created (an
outgoing one while it still connects, so later sends queue on it instead of opening a second)
until it is lost. It is closed after ``idle_timeout`` seconds without traffic in either
direction, and at the first framing error: a stream that lost its framing cannot be trusted.

Bounds (docs/security.md, "TCP bounds"): an accepted connection from a host the ``admit``
callable refuses, over ``max_connections`` in all or over ``max_per_source`` from one host is
closed at once, before anything is read; a message still incomplete ``message_timeout``
seconds after its first byte closes the connection (a trickle cannot hold it); more than
``max_output`` bytes queued for a peer that does not read close it and fail the send. Each is
counted in ``ConnectionTable.drops`` (`DROP_REASONS`), never logged per connection: one
summary line at most every `SUMMARY_INTERVAL` seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Protocol, cast

from pks.net import Address, Proto, Send, SocketInfo, address_from, inbound
from pks.sip.framing import FramingError, StreamFramer
from pks.transport.callbacks import MessageHandler, SendErrorHandler, deliver

__all__ = ["DROP_REASONS", "Admit", "ConnectionTable", "PeerRegistry", "TcpConnection"]

log = logging.getLogger(__name__)

_PONG = b"\r\n"

Admit = Callable[[str], bool]
"""May a connection from this host (an IP literal) be served at all? (`pks.proxy.Proxy.admits`)"""

DROP_REASONS = (
    "tcp_not_admitted",
    "tcp_over_total",
    "tcp_over_per_source",
    "tcp_message_timeout",
    "tcp_output_cap",
)
SUMMARY_INTERVAL = 10.0  # seconds: at most one log line of drops per interval


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
        self.accepted = peer is None  # only accepted connections count against a source
        self.closed = False
        self._framer = StreamFramer(table.max_message_size)
        self._transport: asyncio.Transport | None = None
        self._pending: list[Send] = []  # sends queued while an outgoing connection connects
        self._pending_bytes = 0
        # when the first byte of the message now incomplete in the framer arrived
        self._message_started: float | None = None
        self._message_timer: asyncio.TimerHandle | None = None
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
        if self.closed:  # an outgoing connection given up while it connected (output cap)
            self._transport.abort()
            return
        if self.peer is None:
            peername = transport.get_extra_info("peername")
            if peername is None:  # reset before we saw it
                self._transport.close()
                return
            peer = address_from(peername)
            if self.table.refused(peer.host):
                # closed before a byte is read; counted, not logged: a flood must not
                # become a flood of log lines. ``peer`` stays None: never in the table.
                self.closed = True
                self._transport.abort()
                return
            self.peer = peer
            self.table.add(self)
        log.debug("%s: connected", self)
        self._touch()
        self._arm_idle_timer()
        pending, self._pending = self._pending, []
        for effect in pending:
            self._transport.write(effect.data)

    def data_received(self, data: bytes) -> None:
        if self.closed:  # a connection we closed reads nothing more
            return
        framer = self._framer
        try:
            messages = framer.feed(data)
        except FramingError as exc:
            self._deliver(exc.messages)
            log.warning("%s: closing, %s", self, exc.reason)
            self.close()
            return
        # Activity (for the idle timer) is a read that completes or begins a message; the later
        # bytes of a message still incomplete are not, and the message deadline bounds them:
        # a message trickled in byte by byte cannot hold the connection.
        if not framer.pending:
            self._message_started = None
            self._touch()
        elif messages or self._message_started is None:  # a new message began in this read
            self._touch()
            self._message_started = self._last_activity
            if self._message_timer is None:
                self._arm_message_timer(self._last_activity)
        if framer.pings and self._transport is not None:
            self._transport.write(_PONG * framer.pings)
            self._check_output(None)
        self._deliver(messages)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.peer is None:  # refused at accept (or reset before it): never in the table
            return
        log.debug("%s: closed%s", self, f" ({exc})" if exc else "")
        self.table.remove(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._message_timer is not None:
            self._message_timer.cancel()

    # --- used by the sender ---

    def write(self, effect: Send) -> None:
        """Send now, or once connected for an outgoing connection still connecting.

        Past ``max_output`` bytes queued (a peer that does not read, or does not answer the
        connect), the connection is dropped and the send reported failed."""
        transport = self._transport
        if transport is None:
            self._pending.append(effect)
            self._pending_bytes += len(effect.data)
            if self._pending_bytes > self.table.max_output:
                self._over_output(self.forget())
            return
        self._touch()
        transport.write(effect.data)
        self._check_output(effect)

    def connect_failed(self, reason: str) -> None:
        """The outgoing connection could not be opened: forget it and fail its queued sends."""
        for effect in self.forget():
            self.table.on_send_error(effect, reason)

    def forget(self) -> list[Send]:
        """Drop a connection that never connected; return the sends it had queued."""
        self.closed = True
        self.table.remove(self)
        pending, self._pending = self._pending, []
        self._pending_bytes = 0
        return pending

    def close(self) -> None:
        self.closed = True
        transport = self._transport
        if transport is not None:
            # output the peer has not read by now it may never read: a graceful close would
            # wait for it forever, holding the socket and its place in the table
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()

    def abort(self) -> None:
        """Close at once, dropping any output still queued."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

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

    def _check_output(self, effect: Send | None) -> None:
        transport = self._transport
        if transport is not None and transport.get_write_buffer_size() > self.table.max_output:
            self.abort()
            self._over_output([] if effect is None else [effect])

    def _over_output(self, failed: list[Send]) -> None:
        """Past the output cap: count it and fail ``failed`` (later, never re-entering the
        proxy from inside its own send)."""
        self.table.dropped("tcp_output_cap")
        reason = (
            f"{self}: over {self.table.max_output} bytes queued, the peer does not read;"
            " connection closed"
        )
        call_soon = self._loop.call_soon
        for effect in failed:
            call_soon(self.table.on_send_error, effect, reason)

    def _arm_message_timer(self, started: float) -> None:
        # Like the idle timer: armed when a message begins, re-armed only when it fires, so a
        # busy connection costs no timer operation per message.
        deadline = started + self.table.message_timeout
        self._message_timer = self._loop.call_at(deadline, self._check_message)

    def _check_message(self) -> None:
        self._message_timer = None
        started = self._message_started
        if started is None or self.closed:
            return
        if self._loop.time() >= started + self.table.message_timeout:
            log.debug("%s: message incomplete after %ss, closing", self, self.table.message_timeout)
            self.table.dropped("tcp_message_timeout")
            self.abort()
        else:
            self._arm_message_timer(started)

    def _arm_idle_timer(self) -> None:
        # One timer per connection, re-armed only when it fires: traffic just moves
        # _last_activity, so a busy connection costs no timer operations per message.
        deadline = self._last_activity + self.table.idle_timeout
        self._idle_timer = self._loop.call_at(deadline, self._check_idle)

    def _check_idle(self) -> None:
        now = self._loop.time()
        idle = self.table.idle_timeout
        if now < self._last_activity + idle:
            self._arm_idle_timer()
        elif self.table.pins is not None and self.table.pins.pinned(self.conn_id, now):
            # a live dialog's requests come back on this connection (the peer's NAT alias
            # names it, or its INVITE came on it): kept, and asked again an idle period later
            self._idle_timer = self._loop.call_at(now + idle, self._check_idle)
        else:
            log.debug("%s: idle for %ss, closing", self, idle)
            self.close()


class PeerRegistry(Protocol):
    """Worker processes: which process holds the connection to a peer, so that a send
    towards it goes through that connection (``pks.workers.node``)."""

    def claim(self, socket: SocketInfo, peer: Address) -> None: ...
    def release(self, socket: SocketInfo, peer: Address) -> None: ...
    def relay(self, effect: Send) -> bool: ...


class DialogPins(Protocol):
    """Which connections live dialogs need (`pks.forward.pins.DialogPins`, the proxy's): an
    idle connection one of them needs is kept open."""

    def pinned(self, conn_id: int, now: float) -> bool: ...


class ConnectionTable:
    """Open (and opening) TCP connections by id and by (our socket, peer address).

    ``registry`` (worker processes) is told of every connection added and removed.

    Bounds: ``max_connections`` open in all, ours included (an outgoing one over it is not
    opened: `full`); ``max_per_source`` accepted from one host (ours towards a host never
    count: we chose to open them); ``admit`` (None: every host) is asked for each accepted
    connection before anything is read; ``message_timeout`` and ``max_output`` are read by
    each `TcpConnection`. ``drops`` counts connections closed by a bound, by reason."""

    def __init__(
        self,
        on_message: MessageHandler,
        on_send_error: SendErrorHandler,
        *,
        idle_timeout: float,
        max_message_size: int,
        max_connections: int = 4096,
        max_per_source: int = 64,
        message_timeout: float = 10.0,
        max_output: int = 1 << 20,
        admit: Admit | None = None,
        drops: Counter[str] | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_send_error = on_send_error
        self.idle_timeout = idle_timeout
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.max_per_source = max_per_source
        self.message_timeout = message_timeout
        self.max_output = max_output
        self.admit = admit
        self.drops: Counter[str] = Counter() if drops is None else drops
        self._ids = itertools.count(1)
        self._by_id: dict[int, TcpConnection] = {}
        self._by_peer: dict[tuple[tuple[Proto, str, int], Address], TcpConnection] = {}
        self._per_source: dict[str, int] = {}  # accepted connections open, by peer host
        self.registry: PeerRegistry | None = None
        self.pins: DialogPins | None = None
        self._logged = self.drops.copy()  # the drops already told in a summary line
        self._summary: asyncio.TimerHandle | None = None
        self._gate_failed = False

    def new_id(self) -> int:
        return next(self._ids)

    def add(self, conn: TcpConnection) -> None:
        assert conn.peer is not None
        self._by_id[conn.conn_id] = conn
        self._by_peer[(conn.socket.key, conn.peer)] = conn
        if conn.accepted:
            host = conn.peer.host
            self._per_source[host] = self._per_source.get(host, 0) + 1
        if self.registry is not None:
            self.registry.claim(conn.socket, conn.peer)

    def remove(self, conn: TcpConnection) -> None:
        if conn.peer is None:  # an accepted connection refused or reset before it was added
            return
        if self._by_id.pop(conn.conn_id, None) is not None and conn.accepted:
            host = conn.peer.host
            left = self._per_source[host] - 1
            if left:
                self._per_source[host] = left
            else:
                del self._per_source[host]
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

    def full(self) -> bool:
        """No room for one more connection (accepted or ours)."""
        return len(self._by_id) >= self.max_connections

    def refused(self, host: str) -> bool:
        """Must a connection just accepted from ``host`` be closed at once? (counted if so)"""
        admit = self.admit
        if admit is not None and not self._admits(admit, host):
            reason = "tcp_not_admitted"
        elif len(self._by_id) >= self.max_connections:
            reason = "tcp_over_total"
        elif self._per_source.get(host, 0) >= self.max_per_source:
            reason = "tcp_over_per_source"
        else:
            return False
        self.dropped(reason)
        return True

    def dropped(self, reason: str) -> None:
        """Count a connection closed (or not opened) by a bound; one summary line later."""
        self.drops[reason] += 1
        if self._summary is None:
            loop = asyncio.get_running_loop()
            self._summary = loop.call_later(SUMMARY_INTERVAL, self._log_summary)

    def close_all(self) -> None:
        if self._summary is not None:
            self._summary.cancel()
            self._summary = None
            self._log_summary()
        for conn in list(self._by_id.values()):
            conn.close()

    def _admits(self, admit: Admit, host: str) -> bool:
        try:
            return admit(host)
        except Exception:  # a bug in the gate: fail closed, and say so (once: a flood)
            if not self._gate_failed:
                self._gate_failed = True
                log.exception("admit(%s) failed; connection refused", host)
            return False

    def _log_summary(self) -> None:
        self._summary = None
        new = self.drops - self._logged
        self._logged = self.drops.copy()
        if new:
            told = ", ".join(f"{reason} {new[reason]}" for reason in DROP_REASONS if new[reason])
            log.warning("TCP connections closed by the edge bounds: %s", told)
