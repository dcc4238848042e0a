"""What a worker process holds that its successor needs if it dies: its unanswered INVITEs
and its answered calls, appended to a file beside the shared store (``/dev/shm``).

A killed worker's memory is gone, but not what it started on the wire: callers whose INVITE
it relayed wait for a final response (over UDP a caller that got our 100 Trying does not
even retransmit), gateways ring, and answered calls go on between their two ends and count
against ``max_calls``/``maxload=``. So every worker notes, as it goes:

* ``O`` an INVITE it relays (the request as received, the socket and source it came from),
  ``B`` each branch it opens for it (the bytes sent, the gateway's address, our socket),
  ``A`` once its final response went upstream;
* ``C`` a call answered (its dialog, peer tag, caller, gateway, expiry), ``X`` when it ends.

The worker that replaces it (same index, same file) reads the file before it starts its own:
every INVITE opened and never answered gets a 500 towards its caller and a CANCEL towards
its gateway (:meth:`pks.forward.relay.Relay.adopt_lost`: the caller's retransmissions get
the 500 again, never a second call), and every answered call is counted again
(:meth:`pks.forward.calls.CallTable.restore`), so its BYE frees it as before.

Records are stored into a shared memory map of the file (tmpfs pages: no system call per
record, and a SIGKILL loses nothing stored before it). The file has a fixed size, zeros
past the last record; when a record does not fit, the file is rewritten with only the live
records (a new map, twice their size when they fill more than half of :data:`COMPACT_AT`).
Each record: a 4-byte length, a kind byte, a JSON header (``orjson``), a newline, then the
raw SIP bytes if any. The length is stored last, so a worker killed in the middle of a
record leaves a zero length where it starts: the reader stops there.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from pks.net import Address, Inbound, Proto, SocketInfo

if TYPE_CHECKING:
    from pks.forward.calls import Call
    from pks.sip import Message

__all__ = [
    "COMPACT_AT",
    "Journal",
    "LostCall",
    "LostInvite",
    "journal_path",
    "read_journal",
    "socket_named",
]

log = logging.getLogger("pks.workers")

COMPACT_AT = 4 << 20
"""The file's usual size: when a record does not fit, it is rewritten with the live records."""
_LENGTH = struct.Struct("<I")
Key = tuple[str, ...]


def journal_path(store_path: str, index: int) -> str:
    return f"{store_path}.journal.{index}"


def _record(kind: bytes, header: dict[str, Any], raw: bytes = b"") -> bytes:
    body = b"".join((kind, orjson.dumps(header), b"\n", raw))
    return _LENGTH.pack(len(body)) + body


@dataclass(slots=True)
class LostInvite:
    """An INVITE relayed and never answered by a dead worker."""

    key: Key
    request: bytes
    socket: str  # name of our socket it arrived on
    proto: str
    source: Address
    sent: bytes | None = None  # the last branch's INVITE, as sent
    dest: Address | None = None
    dest_proto: str = "udp"
    dest_socket: str | None = None


@dataclass(slots=True)
class LostCall:
    """An answered call of a dead worker, still up between its two ends."""

    call_id: str
    from_tag: str
    to_tag: str | None
    peer: str | None
    caller: str
    gateway: tuple[int, str, str | None] | None  # dest_key of its target
    gateway_host: str | None
    gateway_port: int
    expires: float | None


def read_journal(path: str) -> tuple[list[LostInvite], list[LostCall]]:
    """The unanswered INVITEs and the answered calls a journal file leaves; empty lists when
    there is no file. A torn last record (killed mid-write) is ignored."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return [], []
    invites: dict[Key, LostInvite] = {}
    calls: dict[tuple[str, str], LostCall] = {}
    at = 0
    while at + 4 <= len(data):
        (size,) = _LENGTH.unpack_from(data, at)
        body = data[at + 4 : at + 4 + size]
        at += 4 + size
        if len(body) < size or not body:
            break
        kind = body[:1]
        head, _, raw = body[1:].partition(b"\n")
        try:
            h = orjson.loads(head)
        except ValueError:
            break
        if kind == b"O":
            key = tuple(h["k"])
            invites[key] = LostInvite(key, raw, h["s"], h["t"], Address(h["h"], h["p"]))
        elif kind == b"B":
            found = invites.get(tuple(h["k"]))
            if found is not None:
                found.sent, found.dest = raw, Address(h["h"], h["p"])
                found.dest_proto, found.dest_socket = h["t"], h["s"]
        elif kind == b"A":
            invites.pop(tuple(h["k"]), None)
        elif kind == b"C":
            gw = h.get("g")
            calls[(h["i"], h["f"])] = LostCall(
                h["i"],
                h["f"],
                h.get("t"),
                h.get("p"),
                h.get("c", ""),
                (gw[0], gw[1], gw[2]) if gw else None,
                h.get("gh"),
                h.get("gp", 0),
                h.get("e"),
            )
        elif kind == b"X":
            calls.pop((h["i"], h["f"]), None)
    return list(invites.values()), list(calls.values())


class Journal:
    """This worker's journal (``InFlightLog`` of the relay, the calls' side through
    :class:`pks.workers.shared.PeerShare`). Open it after reading the predecessor's."""

    def __init__(self, path: str, capacity: int = COMPACT_AT) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._size = 0  # bytes of records in the map
        self._capacity = capacity  # the size of the next file
        self._invites: dict[Key, list[bytes]] = {}  # live INVITEs: their O (and B) records
        self._calls: dict[tuple[str, str], bytes] = {}  # live answered calls: their C record
        self.failed = False

    def open(self) -> None:
        """Start this process's file (the predecessor's, read already, is replaced)."""
        self._rewrite(0)

    def close(self) -> None:
        mapped, self._map = self._map, None
        if mapped is not None:
            mapped.close()

    def _append(self, record: bytes) -> None:
        mapped = self._map
        if mapped is None:
            return
        start = self._size
        end = start + len(record)
        if end > len(mapped):
            self._rewrite(len(record))
            mapped = self._map
            if mapped is None:
                return
            start = self._size
            end = start + len(record)
        mapped[start + 4 : end] = record[4:]
        mapped[start : start + 4] = record[:4]  # last: until then a reader stops here
        self._size = end

    def _broken(self, exc: OSError) -> None:
        if not self.failed:
            log.error("worker journal %s not written (%s): calls lost in a crash", self.path, exc)
        self.failed = True

    def _rewrite(self, room: int) -> None:
        """The live records only, in a new file (with ``room`` bytes free at least) renamed
        over the old one."""
        live = [r for records in self._invites.values() for r in records]
        live += self._calls.values()
        data = b"".join(live)
        capacity = max(self._capacity, 2 * (len(data) + room))
        tmp = f"{self.path}.tmp"
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.ftruncate(fd, capacity)
                mapped = mmap.mmap(fd, capacity)
            finally:
                os.close(fd)
            mapped[: len(data)] = data
            os.replace(tmp, self.path)
        except OSError as exc:
            self._broken(exc)
            self.close()
            return
        self.close()
        self._map, self._size, self._capacity = mapped, len(data), capacity

    # -- the relay's InFlightLog --------------------------------------------------------------
    def opened(self, key: Key, request: Message, inbound: Inbound) -> None:
        source = inbound.source
        header = {
            "k": key,
            "s": inbound.socket.name,
            "t": inbound.socket.proto.value,
            "h": source.host,
            "p": source.port,
        }
        record = _record(b"O", header, request.to_bytes())
        self._invites[key] = [record]
        self._append(record)

    def branched(
        self, key: Key, sent: bytes, dest: Address, proto: Proto, sock: SocketInfo
    ) -> None:
        records = self._invites.get(key)
        if records is None:
            return
        header = {"k": key, "h": dest.host, "p": dest.port, "t": proto.value, "s": sock.name}
        record = _record(b"B", header, sent)
        records[1:] = [record]  # the live branch only
        self._append(record)

    def answered(self, key: Key) -> None:
        if self._invites.pop(key, None) is not None:
            self._append(_record(b"A", {"k": key}))

    # -- the calls (through PeerShare) --------------------------------------------------------
    def call_up(self, call: Call) -> None:
        target = call.target
        header: dict[str, Any] = {
            "i": call.call_id,
            "f": call.from_tag,
            "t": call.to_tag,
            "p": call.peer,
            "c": call.caller,
            "e": call.expires,
        }
        if target is not None:
            header |= {
                "g": [target.setid, target.uri, target.socket_name],
                "gh": target.host,
                "gp": target.port,
            }
        record = _record(b"C", header)
        self._calls[(call.call_id, call.from_tag)] = record
        self._append(record)

    def call_down(self, call: Call) -> None:
        if self._calls.pop((call.call_id, call.from_tag), None) is not None:
            self._append(_record(b"X", {"i": call.call_id, "f": call.from_tag}))


def socket_named(sockets: tuple[SocketInfo, ...], name: str, proto: str) -> SocketInfo | None:
    """Our socket of that name and transport (the predecessor bound the same ones)."""
    for sock in sockets:
        if sock.name == name and sock.proto.value == proto:
            return sock
    return None
