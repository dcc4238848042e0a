"""Which worker a message belongs to, and the channel that carries it there.

Ownership, decided on the raw bytes before any parsing:

* a **response** belongs to the worker whose Via branch it carries: in worker mode our
  branches start ``z9hG4bKpksW`` + the worker index in two hex digits (:func:`branch_prefix`);
  a response without such a branch is handled where it arrived;
* a **request over UDP** belongs to the worker chosen by a hash of its Call-ID
  (:func:`callid_owner`, :func:`mix_call_id`: the hash the kernel steering program of
  :mod:`pks.workers.steer` computes too): an INVITE, its retransmissions, its CANCEL
  and ACK, and the BYE of its dialog all meet the same worker, whatever socket or source
  they came from;
* a request over **TCP** stays with the worker whose connection it came on (the answers go
  back on that connection; the transactions it opens put that worker in their branches).

The channel: each worker has a UDP socket on 127.0.0.1 (its port is in the shared store).
A datagram starts with the instance's random token (other local programs cannot inject),
then a kind byte: ``M`` a SIP message handed off (our socket's index, its source address,
the bytes), ``S`` a TCP send relayed to the worker holding the connection (socket index,
destination, bytes), ``Q``/``A`` a control query and its answer (JSON), ``N`` a
notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from pks.net import Address, Inbound, Proto, Send, SocketInfo, address, inbound, send_to
from pks.transport.listen import UDP_BUFFER
from pks.workers.shared import SharedStore

__all__ = ["Channel", "Router", "branch_owner", "branch_prefix", "callid_owner", "mix_call_id"]

log = logging.getLogger("pks.workers")

_MARK = b"branch=z9hG4bKpksW"
_CALL_ID = re.compile(rb"\n(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)
_HEAD = struct.Struct("!BHB")  # socket index, source port, source host length
MAX_DATAGRAM = 65507
# the Call-ID hash, FNV-1a (32 bits) over the first bytes; pks.workers.steer computes it too
HASHED = 64
FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def branch_prefix(index: int, random_hex: str) -> str:
    """Our Via branch prefix in worker ``index``: the worker is readable from the bytes."""
    return f"z9hG4bKpksW{index:02x}{random_hex}"


def branch_owner(data: bytes) -> int | None:
    """The worker index in the first ``branch=z9hG4bKpksW..`` of a message, if any."""
    at = data.find(_MARK)
    if at < 0:
        return None
    digits = data[at + len(_MARK) : at + len(_MARK) + 2]
    try:
        return int(digits, 16)
    except ValueError:
        return None


def mix_call_id(value: bytes) -> int:
    """A 16-bit hash of a Call-ID value, as the steering program computes it: FNV-1a over
    its first 64 bytes (up to a blank or control byte), the high half."""
    h = FNV_OFFSET
    for at in range(min(len(value), HASHED)):
        byte = value[at]
        if byte <= 0x20:
            break
        h = ((h ^ byte) * FNV_PRIME) & _MASK
    return h >> 16


def callid_owner(data: bytes, workers: int) -> int | None:
    """The worker a request belongs to by its Call-ID (None: no Call-ID in the header section).

    The usual spelling ``Call-ID:`` is found by a byte search; other spellings (``i``, other
    cases, blanks before the colon) by a regex. Both give the same value, so every message
    of a call hashes alike whichever spelling each of its senders uses."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = len(data)
    at = data.find(b"\nCall-ID:", 0, end)
    if at >= 0:
        start = at + 9
        stop = data.find(b"\n", start, end)
        value = data[start : stop if stop >= 0 else end]
    else:
        found = _CALL_ID.search(data, 0, end)
        if found is None:
            return None
        value = found.group(1)
    return mix_call_id(value.strip()) % workers


def pack_message(
    token: bytes, index: int, source: Address, data: bytes, kind: bytes = b"M"
) -> bytes:
    host = source.host.encode()
    return b"".join((token, kind, _HEAD.pack(index, source.port, len(host)), host, data))


def unpack_message(body: memoryview) -> tuple[int, Address, bytes]:
    index, port, length = _HEAD.unpack_from(body)
    at = _HEAD.size
    host = bytes(body[at : at + length]).decode()
    return index, address(host, port), bytes(body[at + length :])


MessageSink = Callable[[bytes, Inbound], None]
SendSink = Callable[[Send], None]
QueryHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
NoticeHandler = Callable[[str, dict[str, Any]], None]


class Router:
    """A worker's receive path: each message from our sockets goes to the worker that owns
    it (over the channel) or to ``local`` (this worker's driver). Compiled with the core
    (``pks.accel``): it runs for every datagram in worker mode.

    Until ``local`` is set (the server is starting) messages are dropped; until ``channel``
    is set (the channel is opening) they are handled here."""

    def __init__(self, index: int, workers: int) -> None:
        self.index = index
        self.workers = workers
        self.local: MessageSink | None = None
        self.channel: Channel | None = None
        # the source gate (``Proxy.admits``): a stranger's datagram is not even handed off
        self.admit: Callable[[str], bool] | None = None

    def on_message(self, data: bytes, inbound: Inbound) -> None:
        local = self.local
        if local is None:
            return
        admit = self.admit
        if admit is not None and not admit(inbound.source.host):
            local(data, inbound)  # the proxy counts it and drops it
            return
        channel = self.channel
        if channel is not None:
            owner: int | None = None
            if data[:4] == b"SIP/":
                owner = branch_owner(data)
            elif inbound.socket.proto is Proto.UDP:
                owner = callid_owner(data, self.workers)
            if (
                owner is not None
                and owner != self.index
                and owner < self.workers
                and channel.hand_off(owner, data, inbound)
            ):
                return
        local(data, inbound)


class Channel(asyncio.DatagramProtocol):
    """One worker's end of the channel: hands messages off, asks and answers queries."""

    def __init__(
        self,
        store: SharedStore,
        sockets: list[SocketInfo],
        deliver: MessageSink,
        on_query: QueryHandler,
        on_notice: NoticeHandler,
        on_send: SendSink | None = None,
    ) -> None:
        self.store = store
        self.index = store.index
        self.token = store.token
        self.sockets = sockets  # the transport's bound sockets, in configuration order
        self._index = {s.key: i for i, s in enumerate(sockets)}  # built once, read per message
        self._deliver = deliver
        self._on_query = on_query
        self._on_notice = on_notice
        self._on_send = on_send
        self._transport: asyncio.DatagramTransport | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0
        self.received = 0
        self.dropped = 0

    async def open(self) -> int:
        """Bind on 127.0.0.1 and publish the port; returns it."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        sock = transport.get_extra_info("socket")
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UDP_BUFFER)
        port = int(transport.get_extra_info("sockname")[1])
        self.store.set_worker(self.index, port=port)
        return port

    def connection_made(self, transport: asyncio.DatagramTransport) -> None:  # type: ignore[override]
        self._transport = transport

    def close(self) -> None:
        for future in self._waiting.values():
            future.cancel()
        if self._transport is not None:
            self._transport.close()

    def alive(self, index: int) -> bool:
        return self.store.port(index) != 0

    # -- out ----------------------------------------------------------------------------
    def _send(self, index: int, payload: bytes) -> bool:
        port = self.store.port(index)
        if port == 0 or self._transport is None or len(payload) > MAX_DATAGRAM:
            return False
        try:
            self._transport.sendto(payload, ("127.0.0.1", port))
        except OSError:
            return False
        return True

    def hand_off(self, owner: int, data: bytes, inbound: Inbound) -> bool:
        """Send a received message to its owner; False when that cannot be done."""
        index = self._index.get(inbound.socket.key)
        if index is None:
            return False
        if self._send(owner, pack_message(self.token, index, inbound.source, data)):
            self.sent += 1
            return True
        self.dropped += 1
        return False

    def relay_send(self, holder: int, effect: Send) -> bool:
        """Pass a TCP send to the worker holding the connection; False if it cannot be."""
        index = self._index.get(effect.socket.key)
        if index is None:
            return False
        payload = pack_message(self.token, index, effect.dest, effect.data, b"S")
        if self._send(holder, payload):
            self.sent += 1
            return True
        self.dropped += 1
        return False

    def notify(self, op: str, args: dict[str, Any]) -> None:
        """A notification to every other worker (no answer)."""
        payload = self.token + b"N" + json.dumps({"op": op, "args": args}).encode()
        for index in range(self.store.workers):
            if index != self.index:
                self._send(index, payload)

    async def ask_all(self, op: str, args: dict[str, Any], timeout: float) -> dict[int, Any]:
        """Ask every other live worker; worker index → its answer (missing: no answer)."""
        loop = asyncio.get_running_loop()
        pending: dict[int, asyncio.Future[Any]] = {}
        for index in range(self.store.workers):
            if index == self.index or not self.alive(index):
                continue
            ident = next(self._ids)
            body = json.dumps({"id": ident, "op": op, "args": args}).encode()
            future: asyncio.Future[Any] = loop.create_future()
            if self._send(index, self.token + b"Q" + body):
                self._waiting[ident] = pending[index] = future
        answers: dict[int, Any] = {}
        try:
            if pending:
                await asyncio.wait(pending.values(), timeout=timeout)
            for index, future in pending.items():
                if future.done() and not future.cancelled():
                    answers[index] = future.result()
        finally:
            for ident, future in list(self._waiting.items()):
                if future in pending.values():
                    del self._waiting[ident]
        return answers

    # -- in -----------------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        token = self.token
        if not data.startswith(token) or len(data) <= len(token):
            return
        body = memoryview(data)[len(token) + 1 :]
        kind = data[len(token)]
        try:
            if kind == 0x4D:  # M
                index, source, message = unpack_message(body)
                if index < len(self.sockets):
                    self.received += 1
                    self._deliver(message, inbound(self.sockets[index], source))
            elif kind == 0x53 and self._on_send is not None:  # S
                index, dest, message = unpack_message(body)
                if index < len(self.sockets):
                    self.received += 1
                    self._on_send(send_to(message, dest, self.sockets[index]))
            elif kind == 0x51:  # Q
                query = json.loads(bytes(body))
                task = asyncio.ensure_future(self._answer(query, addr))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif kind == 0x41:  # A
                answer = json.loads(bytes(body))
                future = self._waiting.pop(int(answer["id"]), None)
                if future is not None and not future.done():
                    future.set_result(answer.get("result"))
            elif kind == 0x4E:  # N
                notice = json.loads(bytes(body))
                self._on_notice(str(notice["op"]), dict(notice.get("args") or {}))
        except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as exc:
            log.warning("bad worker channel datagram from %s: %s", addr, exc)

    async def _answer(self, query: dict[str, Any], addr: tuple[Any, ...]) -> None:
        try:
            result = await self._on_query(str(query["op"]), dict(query.get("args") or {}))
        except Exception as exc:
            log.exception("worker query %r failed", query.get("op"))
            result = {"error": str(exc)}
        body = json.dumps({"id": query.get("id"), "result": result}).encode()
        if self._transport is not None:
            with contextlib.suppress(OSError):
                self._transport.sendto(self.token + b"A" + body, addr)
