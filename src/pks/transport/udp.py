"""Step ① for UDP: one datagram is one SIP message, in and out.

``datagram_received`` passes each datagram as-is to ``on_message`` with an `Inbound` naming this
socket and the packet's source (RFC 3261 §18.1.2, §18.2.1: on UDP a datagram carries exactly one
message, so there is no framing). `UdpEndpoint.send` carries out a `Send` effect with
``sendto``.

Invariant: nothing a peer or the proxy does closes the socket. Datagrams larger than
``max_message_size`` are dropped; a failed ``sendto`` (asyncio reports it through
``error_received`` during the call, uvloop raises) becomes one ``on_send_error``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pks.net import Send, SocketInfo, address_from, inbound
from pks.transport.callbacks import MessageHandler, SendErrorHandler, deliver

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
    ) -> None:
        self.socket = socket  # replaced by the bound SocketInfo once the port is known
        self._on_message = on_message
        self._on_send_error = on_send_error
        self._max = max_message_size
        self._transport: asyncio.DatagramTransport | None = None
        self._sending = False
        self._send_error: Exception | None = None

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]  # as typeshed
        self._transport = transport

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

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
