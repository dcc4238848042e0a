"""Step ① for UDP: one datagram is one SIP message, in and out.

``datagram_received`` passes each datagram as-is to ``on_message`` with an `Inbound` naming this
socket and the packet's source (RFC 3261 §18.1.2, §18.2.1: on UDP a datagram carries exactly one
message, so there is no framing). `UdpEndpoint.send` carries out a `Send` effect with
``sendto``, or — when the optional accelerator is built (``pks.transport._sendq``, compiled by
``python -m pks.accel``) — queues it for a native thread that sends in order with ``sendmmsg``:
the kernel's share of a send (on loopback, the receiving side's too) then runs beside the event
loop instead of on its thread.

Receiving: with the accelerator built, `UdpEndpoint.attach` takes the socket instead of the
event loop's UDP transport and reads it with ``pks.transport._sendq.Receiver``: one
``recvmmsg`` for up to 32 datagrams, and one `Inbound` per peer address kept in the receiver's
small cache rather than built per datagram. The loop then wakes once per batch, not once per
datagram. Without it (pure Python, or another OS) the loop's ``create_datagram_endpoint`` reads
as before; both paths hand the same ``(data, inbound)`` to ``on_message``.

Invariant: nothing a peer or the proxy does closes the socket. Datagrams larger than
``max_message_size`` are dropped before anything parses them, counted in ``drops``
(``udp_too_large``) and never logged one by one; a failed send (asyncio reports it through
``error_received`` during the call, uvloop raises, the send thread returns its errno) becomes
one ``on_send_error``, always from the event loop, never during ``send``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket as _socket
from collections import Counter
from typing import Any

from pks.net import Address, Send, SocketInfo, address, address_from, inbound
from pks.transport.callbacks import MessageHandler, SendErrorHandler, deliver

try:
    from pks.transport._sendq import Receiver, SendQueue
except ImportError:  # not built (pure Python), or not Linux: the loop's own sendto
    SendQueue = None  # type: ignore[assignment,misc]
    Receiver = None  # type: ignore[assignment,misc]

# Batches read per loop wake-up before other callbacks get their turn (8 × 32 datagrams).
DRAIN_ROUNDS = 8

__all__ = ["UdpEndpoint"]

log = logging.getLogger(__name__)


class UdpEndpoint(asyncio.DatagramProtocol):
    """The protocol object of one bound UDP socket."""

    def __init__(
        self,
        socket: SocketInfo,
        on_message: MessageHandler,
        on_send_error: SendErrorHandler,
        max_message_size: int,
        send_thread: bool = True,
        drops: Counter[str] | None = None,
    ) -> None:
        self.socket = socket  # replaced by the bound SocketInfo once the port is known
        self._on_message = on_message
        self._on_send_error = on_send_error
        self._max = max_message_size
        self.drops: Counter[str] = Counter() if drops is None else drops
        self._use_thread = send_thread  # when the accelerator is built (see the module doc)
        self._transport: asyncio.DatagramTransport | None = None
        self._sending = False
        self._send_error: Exception | None = None
        self._queue: SendQueue | None = None
        self._reader: Receiver | None = None  # batched receives (attach)
        self._sock: _socket.socket | None = None  # the socket read by _reader
        self._too_large = 0  # the reader's count already added to drops
        # Any: uvloop's add_reader/remove_reader return None where typeshed says bool, and
        # compiled code checks a declared return type
        self._loop: Any = None

    def attach(self, sock: _socket.socket) -> bool:
        """Read ``sock`` in batches with the accelerator (see the module doc), from the
        running loop: True when done, False when the accelerator is not there (the caller
        then hands the socket to ``create_datagram_endpoint``)."""
        if Receiver is None:
            return False
        sock.setblocking(False)
        here = self.socket
        reader = Receiver(
            sock.fileno(),
            min(self._max, 65535),
            lambda host, port: inbound(here, address(host, port)),
        )
        self._loop = asyncio.get_running_loop()
        self._sock = sock
        self._reader = reader
        self._start_queue(sock)
        self._loop.add_reader(sock.fileno(), self._drain)
        return True

    def _drain(self) -> None:
        """The socket is readable: hand what waits to ``on_message``, batch by batch."""
        reader = self._reader
        if reader is None:
            return
        on_message = self._on_message
        full = reader.batch
        queue = self._queue
        for _ in range(DRAIN_ROUNDS):
            batch = reader.recv()
            if queue is not None:  # the batch's answers leave together, in one sendmmsg
                queue.hold()
            for data, source in batch:
                deliver(on_message, data, source)
            if queue is not None:
                failures = queue.flush()
                if failures:
                    self._failed(failures)
            if len(batch) < full:
                break
        if reader.too_large != self._too_large:  # a flood must not cost a log call per packet
            self.drops["udp_too_large"] += reader.too_large - self._too_large
            self._too_large = reader.too_large

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]  # as typeshed
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._start_queue(sock)

    def _start_queue(self, sock: _socket.socket) -> None:
        if SendQueue is not None and self._use_thread:
            try:
                queue = SendQueue(sock.fileno())
            except OSError as exc:
                log.warning(
                    "%s: no send thread (%s): sending from the event loop", self.socket, exc
                )
            else:
                self._loop = asyncio.get_running_loop()
                self._loop.add_reader(queue.event_fd, self._reap)
                self._queue = queue

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # the per-datagram path: Address and Inbound without their interpreted constructors
        if len(data) > self._max:  # a flood must not cost a log call per packet
            self.drops["udp_too_large"] += 1
            return
        deliver(self._on_message, data, inbound(self.socket, address_from(addr)))

    def error_received(self, exc: Exception) -> None:
        if self._sending:
            self._send_error = exc  # raised by the sendto() in progress: reported by send()
        else:
            # e.g. an ICMP port unreachable for an earlier datagram: it names no Send
            log.debug("%s: %s", self.socket, exc)

    def send(self, effect: Send) -> None:
        """``sendto`` the effect's data (port already checked); failures go to ``on_send_error``."""
        transport = self._transport
        dest = effect.dest
        if self._reader is not None:
            if self._sock is None:
                self._fail(effect, f"{self.socket} is closed")
                return
        elif transport is None or transport.is_closing():
            self._fail(effect, f"{self.socket} is closed")
            return
        queue = self._queue
        if queue is not None:
            queued = queue.send(effect, effect.data, dest.host, dest.port)
            if queued is not False:  # False: not an IP literal, sendto says why below
                if queued is not True:
                    self._failed(queued)  # earlier sends that the thread could not make
                return
        self._sending, self._send_error = True, None
        try:
            if transport is not None:
                transport.sendto(effect.data, dest)  # an Address is a (host, port) tuple
            else:
                self._sendto(effect.data, dest)
        except (OSError, ValueError) as exc:  # uvloop: family mismatch or not an IP literal
            self._send_error = exc
        finally:
            self._sending = False
        if self._send_error is not None:
            self._fail(effect, f"sendto {dest} from {self.socket} failed: {self._send_error}")

    def _sendto(self, data: bytes, dest: Address) -> None:
        """A send without the event loop's transport (attached sockets): the socket's own
        non-blocking ``sendto``; a full buffer loses the datagram, as UDP may."""
        sock = self._sock
        assert sock is not None
        with contextlib.suppress(BlockingIOError):
            sock.sendto(data, dest)

    def _fail(self, effect: Send, reason: str) -> None:
        log.info("%s", reason)
        asyncio.get_running_loop().call_soon(self._on_send_error, effect, reason)

    def _failed(self, failures: list[tuple[object, int]]) -> None:
        for effect, errno in failures:
            assert isinstance(effect, Send)
            self._fail(
                effect,
                f"sendto {effect.dest} from {self.socket} failed: "
                f"[Errno {errno}] {os.strerror(errno)}",
            )

    def _reap(self) -> None:
        """The send thread had failures (its event fd is readable): report them."""
        queue = self._queue
        failures = queue.reap() if queue is not None else None
        if failures:
            self._failed(failures)

    def close(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:  # what is queued still goes out, then the thread ends
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(queue.event_fd)
            failures = queue.close()
            if failures:
                log.info("%s: %d sends failed while closing", self.socket, len(failures))
        reader, self._reader = self._reader, None
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        if reader is not None:
            reader.close()
        if self._transport is not None:
            self._transport.close()
