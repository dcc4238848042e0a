"""Step ① for UDP: one datagram is one SIP message, in and out.

``datagram_received`` passes each datagram as-is to ``on_message`` with an `Inbound` naming this
socket and the packet's source (RFC 3261 §18.1.2, §18.2.1: on UDP a datagram carries exactly one
message, so there is no framing). `UdpEndpoint.send` carries out a `Send` effect with
``sendto``, or — when the optional accelerator is built (``pks.transport._sendq``, compiled by
``python -m pks.accel``) — queues it for a native thread that sends in order with ``sendmmsg``:
the kernel's share of a send (on loopback, the receiving side's too) then runs beside the event
loop instead of on its thread.

Invariant: nothing a peer or the proxy does closes the socket. Datagrams larger than
``max_message_size`` are dropped; a failed send (asyncio reports it through ``error_received``
during the call, uvloop raises, the send thread returns its errno) becomes one
``on_send_error``, always from the event loop, never during ``send``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from pks.net import Send, SocketInfo, address_from, inbound
from pks.transport.callbacks import MessageHandler, SendErrorHandler, deliver

try:
    from pks.transport._sendq import SendQueue
except ImportError:  # not built (pure Python), or not Linux: the loop's own sendto
    SendQueue = None  # type: ignore[assignment,misc]

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
    ) -> None:
        self.socket = socket  # replaced by the bound SocketInfo once the port is known
        self._on_message = on_message
        self._on_send_error = on_send_error
        self._max = max_message_size
        self._use_thread = send_thread  # when the accelerator is built (see the module doc)
        self._transport: asyncio.DatagramTransport | None = None
        self._sending = False
        self._send_error: Exception | None = None
        self._queue: SendQueue | None = None
        # Any: uvloop's add_reader/remove_reader return None where typeshed says bool, and
        # compiled code checks a declared return type
        self._loop: Any = None

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]  # as typeshed
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if SendQueue is not None and sock is not None and self._use_thread:
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
        source = address_from(addr)
        if len(data) > self._max:
            log.debug("%s: dropped %d-byte datagram from %s", self.socket, len(data), source)
            return
        deliver(self._on_message, data, inbound(self.socket, source))

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
        if transport is None or transport.is_closing():
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
            transport.sendto(effect.data, dest)  # an Address is a (host, port) tuple
        except (OSError, ValueError) as exc:  # uvloop: family mismatch or not an IP literal
            self._send_error = exc
        finally:
            self._sending = False
        if self._send_error is not None:
            self._fail(effect, f"sendto {dest} from {self.socket} failed: {self._send_error}")

    def _fail(self, effect: Send, reason: str) -> None:
        log.info("%s", reason)
        asyncio.get_running_loop().call_soon(self._on_send_error, effect, reason)

    def _failed(self, failures: list[tuple[object, int]]) -> None:
        for effect, errno in failures:
            assert isinstance(effect, Send)
            self._fail(effect, f"sendto {effect.dest} from {self.socket} failed: "
                       f"[Errno {errno}] {os.strerror(errno)}")  # fmt: skip

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
        if self._transport is not None:
            self._transport.close()
