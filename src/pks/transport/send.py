"""Step ⑥ → ①: carry out `Send` effects, picking our socket and the TCP connection.

The proxy core returns `Send(data, dest, socket, conn_id)` values; `Sender.send` turns each into
a ``sendto`` (UDP) or a connection write (TCP).

TCP connection choice (RFC 3261 §18.1.1, §18.2.2): the connection named by ``conn_id`` when
it is still open; else any open connection between that socket and ``dest`` (accepted or
opened); else a new connection from the socket's IP address (port 0, so the peer sees the
right source IP), with the data queued until it connects.

Invariant: `Sender.send` never raises for a send that cannot be done and never calls back into
the proxy synchronously: every failure reaches ``on_send_error`` later, from the event loop.
"""

from __future__ import annotations

import asyncio
import logging

from pks.net import Address, Proto, Send, SocketInfo
from pks.transport.tcp import ConnectionTable, TcpConnection
from pks.transport.udp import UdpEndpoint

__all__ = ["Sender"]

log = logging.getLogger(__name__)


class Sender:
    """Our sockets by (proto, host, port), and the TCP connections to reuse."""

    def __init__(self, table: ConnectionTable, connect_timeout: float) -> None:
        self._table = table
        self._connect_timeout = connect_timeout
        self._udp: dict[tuple[Proto, str, int], UdpEndpoint] = {}
        self._tcp: dict[tuple[Proto, str, int], SocketInfo] = {}
        self._connecting: set[asyncio.Task[None]] = set()

    def add_udp(self, configured: SocketInfo, endpoint: UdpEndpoint) -> None:
        """Send from ``endpoint`` when an effect names the configured or the bound socket."""
        self._udp[configured.key] = self._udp[endpoint.socket.key] = endpoint

    def add_tcp(self, configured: SocketInfo, bound: SocketInfo) -> None:
        """Open and reuse connections of ``bound`` for the configured or the bound socket."""
        self._tcp[configured.key] = self._tcp[bound.key] = bound

    def send(self, effect: Send, relay: bool = True) -> None:
        """Carry out one `Send` effect now, or start doing so (TCP connect).

        Worker processes: a TCP send towards a peer whose connection another worker holds is
        relayed to that worker (unless ``relay`` is False: it was relayed to us)."""
        if not 0 < effect.dest.port < 65536:  # asyncio closes a UDP socket on OverflowError
            self._fail(effect, f"bad destination port {effect.dest.port}")
        elif effect.socket.proto is Proto.UDP:
            endpoint = self._udp.get(effect.socket.key)
            if endpoint is None:
                self._fail(effect, f"{effect.socket} is not one of our sockets")
            else:
                endpoint.send(effect)
        else:
            socket = self._tcp.get(effect.socket.key)
            if socket is None:
                self._fail(effect, f"{effect.socket} is not one of our sockets")
            else:
                conn = self._connection(effect, socket, relay)
                if conn is not None:
                    conn.write(effect)

    async def close(self) -> None:
        """Abandon connections still connecting (their queued sends are dropped)."""
        tasks = list(self._connecting)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _connection(self, effect: Send, socket: SocketInfo, relay: bool) -> TcpConnection | None:
        conn = None if effect.conn_id is None else self._table.get(effect.conn_id)
        if conn is None:
            conn = self._table.find(socket, effect.dest)
        registry = self._table.registry
        # the registry knows connections by our bound socket (a configured port 0 differs)
        bound = effect if effect.socket is socket else effect._replace(socket=socket)
        if conn is None and relay and registry is not None and registry.relay(bound):
            return None
        if conn is None and not effect.connect:
            # a NAT alias: the peer's source port, where nothing listens; the proxy logs it
            reason = f"no open connection to {effect.dest} from {socket} (a NAT alias)"
            asyncio.get_running_loop().call_soon(self._table.on_send_error, effect, reason)
            return None
        if conn is None and self._table.full():
            # PKS_TCP_MAX_CONNECTIONS counts ours too: the send fails (the branch fails over)
            self._table.dropped("tcp_over_total")
            reason = f"TCP to {effect.dest} not opened: {self._table.max_connections} open"
            asyncio.get_running_loop().call_soon(self._table.on_send_error, effect, reason)
            return None
        if conn is None:
            conn = TcpConnection(self._table, socket, effect.dest)
            task = asyncio.get_running_loop().create_task(self._open(conn, effect.dest))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
        return conn

    async def _open(self, conn: TcpConnection, dest: Address) -> None:
        loop = asyncio.get_running_loop()
        connect = loop.create_connection(
            lambda: conn, dest.host, dest.port, local_addr=(conn.socket.host, 0)
        )
        try:
            await asyncio.wait_for(connect, self._connect_timeout)
        except asyncio.CancelledError:
            conn.forget()
            raise
        except TimeoutError:
            self._connect_failed(conn, f"no answer in {self._connect_timeout}s")
        except (OSError, ValueError) as exc:
            self._connect_failed(conn, str(exc))

    def _connect_failed(self, conn: TcpConnection, why: str) -> None:
        reason = f"TCP connect to {conn.peer} from {conn.socket.host} failed: {why}"
        log.info("%s", reason)
        conn.connect_failed(reason)

    def _fail(self, effect: Send, reason: str) -> None:
        log.info("%s", reason)
        asyncio.get_running_loop().call_soon(self._table.on_send_error, effect, reason)
