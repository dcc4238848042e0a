"""Step ① in and out: `Transport`, the whole I/O edge of the proxy behind four calls.

``start`` opens every configured socket and from then on calls ``on_message(data, inbound)`` for
each received message; ``send`` carries out the proxy's `Send` effects; ``on_send_error(send,
reason)`` reports those that could not be done (the proxy fails the branch over); ``close``
stops everything. The proxy core never sees a socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Sequence

from pks.net import Proto, Send, SocketInfo
from pks.transport.callbacks import MessageHandler, SendErrorHandler
from pks.transport.listen import open_tcp, open_udp
from pks.transport.send import Sender
from pks.transport.tcp import Admit, ConnectionTable, DialogPins, PeerRegistry
from pks.transport.udp import UdpEndpoint

__all__ = ["Transport"]


class Transport:
    """Our UDP sockets, TCP listeners and TCP connections.

    ``tcp_idle_timeout`` and ``max_message_size`` come from `pks.config.Settings`;
    ``connect_timeout`` bounds an outgoing TCP connect before its sends are reported failed;
    ``reuse_port`` binds with SO_REUSEPORT (worker processes sharing the addresses);
    ``inherited`` are UDP sockets already bound (by the worker supervisor), one per UDP
    entry of the configuration, in its order.
    TCP bounds (docs/security.md): ``tcp_max_connections`` in all, ``tcp_max_per_source``
    accepted from one host, ``tcp_message_timeout`` for a message to arrive once begun,
    ``tcp_max_output`` bytes queued for one peer; ``admit(host)`` (None: every host) decides
    whether an accepted connection is served at all. ``drops`` counts, by reason
    (`pks.transport.tcp.DROP_REASONS`), the connections those bounds closed, and
    ``udp_too_large`` the datagrams over ``max_message_size`` (dropped unparsed).
    After `start`, ``bound`` lists the listening sockets in configuration order with their
    real ports (a configured port 0 is replaced by the one the system picked).
    """

    def __init__(
        self,
        *,
        tcp_idle_timeout: float = 120.0,
        max_message_size: int = 65535,
        connect_timeout: float = 10.0,
        send_thread: bool = True,
        recv_batch: bool = True,
        reuse_port: bool = False,
        inherited: Sequence[socket.socket] = (),
        tcp_max_connections: int = 4096,
        tcp_max_per_source: int = 64,
        tcp_message_timeout: float = 10.0,
        tcp_max_output: int = 1 << 20,
        admit: Admit | None = None,
    ) -> None:
        self.bound: list[SocketInfo] = []
        self.drops: Counter[str] = Counter()
        self._max_connections = tcp_max_connections
        self._max_per_source = tcp_max_per_source
        self._message_timeout = tcp_message_timeout
        self._max_output = tcp_max_output
        self._admit = admit
        self._inherited = list(inherited)
        self._idle_timeout = tcp_idle_timeout
        self._max_message_size = max_message_size
        self._connect_timeout = connect_timeout
        self._reuse_port = reuse_port
        self._send_thread = send_thread
        self._recv_batch = recv_batch
        self._endpoints: list[UdpEndpoint] = []
        self._servers: list[asyncio.Server] = []
        self._table: ConnectionTable | None = None
        self._sender: Sender | None = None

    async def start(
        self,
        sockets: Sequence[SocketInfo],
        on_message: MessageHandler,
        on_send_error: SendErrorHandler,
    ) -> None:
        """Bind every socket (all or none: on failure the ones opened are closed again)."""
        table = ConnectionTable(
            on_message,
            on_send_error,
            idle_timeout=self._idle_timeout,
            max_message_size=self._max_message_size,
            max_connections=self._max_connections,
            max_per_source=self._max_per_source,
            message_timeout=self._message_timeout,
            max_output=self._max_output,
            admit=self._admit,
            drops=self.drops,
        )
        sender = Sender(table, self._connect_timeout)
        self._table, self._sender = table, sender
        try:
            for info in sockets:
                if info.proto is Proto.UDP:
                    sock = self._inherited.pop(0) if self._inherited else None
                    endpoint = await open_udp(
                        info,
                        on_message,
                        on_send_error,
                        self._max_message_size,
                        self._reuse_port,
                        sock,
                        send_thread=self._send_thread,
                        recv_batch=self._recv_batch,
                        drops=self.drops,
                    )
                    self._endpoints.append(endpoint)
                    sender.add_udp(info, endpoint)
                    self.bound.append(endpoint.socket)
                else:
                    server, bound = await open_tcp(info, table, self._reuse_port)
                    self._servers.append(server)
                    sender.add_tcp(info, bound)
                    self.bound.append(bound)
        except BaseException:
            await self.close()
            raise

    def send(self, effect: Send, relay: bool = True) -> None:
        """Carry out a `Send` effect; failures are reported to ``on_send_error``, not raised.

        Calling it before `start` or after `close` is a programming error (RuntimeError).
        ``relay=False``: a send another worker relayed to us (never relayed again).
        """
        if self._sender is None:
            raise RuntimeError("Transport.send() outside start() ... close()")
        self._sender.send(effect, relay)

    @property
    def sender(self) -> Sender | None:
        """What `send` calls (None outside `start` ... `close`): the per-message path uses it
        directly."""
        return self._sender

    def share_connections(self, registry: PeerRegistry) -> None:
        """Worker processes: tell ``registry`` of our TCP connections, relay through it."""
        if self._table is None:
            raise RuntimeError("Transport.share_connections() before start()")
        self._table.registry = registry

    def pin_connections(self, pins: DialogPins) -> None:
        """Keep open the idle TCP connections ``pins`` says a live dialog needs."""
        if self._table is None:
            raise RuntimeError("Transport.pin_connections() before start()")
        self._table.pins = pins

    def sockets_by_name(self, name: str, proto: Proto | None = None) -> tuple[SocketInfo, ...]:
        """The bound sockets called ``name`` (of protocol ``proto`` when given), in order."""
        return tuple(
            info
            for info in self.bound
            if info.name == name and (proto is None or info.proto is proto)
        )

    async def close(self) -> None:
        """Stop listening, close every connection and socket; queued TCP sends are dropped."""
        for server in self._servers:
            server.close()
        if self._sender is not None:
            await self._sender.close()
        if self._table is not None:
            self._table.close_all()
        self._sender = self._table = None
        for endpoint in self._endpoints:
            endpoint.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        self._endpoints.clear()
        self.bound.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost callbacks
