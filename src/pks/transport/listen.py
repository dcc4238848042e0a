"""Step ①, at start-up: open the named listening sockets of PKS_LISTEN, learn their ports.

Each configured `SocketInfo` is bound here, before its protocol exists, so the `SocketInfo`
every `Inbound` carries already has the real port when the configured one is 0 (tests) and no
datagram or connection can be seen with the configured one.

IPv6 sockets are IPv6-only: ``udp:0.0.0.0:5060`` and ``udp:[::]:5060`` are two sockets and
both can be listed. With ``reuse_port`` (worker processes) every socket gets SO_REUSEPORT, so
that each worker binds the same addresses and the kernel spreads datagrams and connections
over them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections import Counter

from pks.net import Proto, SocketInfo
from pks.transport.callbacks import MessageHandler, SendErrorHandler
from pks.transport.tcp import ConnectionTable, TcpConnection
from pks.transport.udp import UdpEndpoint

__all__ = ["bind_socket", "open_tcp", "open_udp"]

_BACKLOG = 1024
# Room for bursts while the event loop is busy: the kernel caps it at net.core.rmem_max.
UDP_BUFFER = 4 * 1024 * 1024


def bind_socket(info: SocketInfo, reuse_port: bool = False) -> tuple[socket.socket, SocketInfo]:
    """A bound, non-blocking socket for ``info`` and ``info`` with the bound port."""
    family = socket.AF_INET6 if ":" in info.host else socket.AF_INET
    kind = socket.SOCK_DGRAM if info.proto is Proto.UDP else socket.SOCK_STREAM
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((info.host, info.port))
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {info}: {exc.strerror}") from exc
    return sock, dataclasses.replace(info, port=sock.getsockname()[1])


async def open_udp(
    info: SocketInfo,
    on_message: MessageHandler,
    on_send_error: SendErrorHandler,
    max_message_size: int,
    reuse_port: bool = False,
    sock: socket.socket | None = None,
    *,
    send_thread: bool = True,
    recv_batch: bool = True,
    drops: Counter[str] | None = None,
) -> UdpEndpoint:
    """Bind a UDP socket (or take ``sock``, already bound for ``info``); its
    `UdpEndpoint.socket` is the bound `SocketInfo`."""
    if sock is None:
        sock, bound = bind_socket(info, reuse_port)
    else:  # bound by the supervisor for this worker (pks.workers.steer)
        sock.setblocking(False)
        bound = dataclasses.replace(info, port=sock.getsockname()[1])
    endpoint = UdpEndpoint(bound, on_message, on_send_error, max_message_size, send_thread, drops)
    loop = asyncio.get_running_loop()
    try:
        if not (recv_batch and endpoint.attach(sock)):  # batches need the accelerator
            await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
    except BaseException:
        sock.close()
        raise
    return endpoint


async def open_tcp(
    info: SocketInfo, table: ConnectionTable, reuse_port: bool = False
) -> tuple[asyncio.Server, SocketInfo]:
    """Listen on a TCP socket; each accepted connection becomes a `TcpConnection` in ``table``."""
    sock, bound = bind_socket(info, reuse_port)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: TcpConnection(table, bound), sock=sock, backlog=_BACKLOG
        )
    except BaseException:
        sock.close()
        raise
    return server, bound
