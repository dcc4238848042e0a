"""Call records, the core's side: one :class:`CallRecord` per call attempt and the
:class:`Recorder` that queues the finished ones.

Sans-IO and compiled with the core (``pks.accel.MODULES``): a record is filled from values
the proxy already holds when it routes, relays and closes a call — Call-ID, tags, numbers,
the source peer, the set, each gateway tried, the final code, the BYE — with times in the
core's clock (``now``). Nothing is parsed again or written here: a finished record is packed
into its spool line (:attr:`Recorder.packer`, a :class:`Packer`: its values as one JSON array,
encoded by ``orjson``) and appended to :attr:`Recorder.queue`, a bounded in-memory queue that
the writer thread of :mod:`pks.cdr.service` writes to the spool (``deque`` appends and pops
are atomic). Packing is here, compiled with the core, because it runs on the event loop once
per call: interpreted, with the standard library's JSON encoder, it cost about a tenth of a
call's core time.

With call records off the recorder is None, and the core pays one None check where a record
would be made (``CallTable.recorder``; ``Call.cdr`` afterwards).

A record's life: :meth:`Recorder.opened` when an initial INVITE is routed (or
:meth:`Recorder.rejected` when it is refused: a finished record at once), :meth:`CallRecord.
attempt` for each branch (the first gateway, then each failover), :meth:`CallRecord.final`
when the final response goes to the caller (answered, or ended: failed, cancelled), then for
an answered call the BYE (``pks.forward.calls.CallTable.close_dialog``: the side that sent
it), the expiry without BYE, or the proxy's stop; the call table queues it when it closes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

__all__ = [
    "ANSWERED",
    "CANCELLED",
    "FAILED",
    "REJECTED",
    "CallRecord",
    "Packer",
    "Recorder",
    "pack",
]

PeerOf = Callable[[str, int], str | None]

ANSWERED: Final = "answered"
FAILED: Final = "failed"  # ended unanswered with a final response >= 300 (not 487)
CANCELLED: Final = "cancelled"  # ended with 487: the caller's CANCEL
REJECTED: Final = "rejected"  # refused by the proxy before any gateway (route, limits, load)


class CallRecord:
    """One call attempt (an initial INVITE), filled as the call goes; times are the core's
    ``now`` (``pks.cdr.fields`` makes them wall-clock times)."""

    __slots__ = (
        "answer",
        "attempts",
        "call_id",
        "called",
        "caller",
        "code",
        "codes",
        "end",
        "ended_by",
        "from_tag",
        "peer",
        "reason",
        "setid",
        "source_host",
        "source_port",
        "start",
        "status",
        "to_tag",
    )

    def __init__(
        self,
        call_id: str,
        from_tag: str,
        caller: str | None,
        called: str | None,
        peer: str | None,
        source_host: str,
        source_port: int,
        setid: int,
        start: float,
    ) -> None:
        self.call_id = call_id
        self.from_tag = from_tag
        self.to_tag: str | None = None  # the callee's tag, from the 2xx
        self.caller = caller  # the From URI's user part
        self.called = called  # the R-URI user part routed on
        self.peer = peer  # the source's address tag (None: untagged, or refused unrouted)
        self.source_host = source_host
        self.source_port = source_port
        self.setid = setid  # the dispatcher set (0: refused before a set was chosen)
        self.start = start
        self.attempts: list[tuple[str, float]] = []  # (gateway URI, when its branch opened)
        self.codes: list[int] = []  # final codes the attempts ended with, in order
        self.answer: float | None = None
        self.end: float | None = None
        self.code = 0  # the final response the caller got
        self.reason = ""
        self.status = ""  # ANSWERED, FAILED, CANCELLED or REJECTED
        self.ended_by = ""  # caller, callee (the BYE's sender), expired, stopped, proxy

    def attempt(self, uri: str, now: float) -> None:
        """A branch opened toward the gateway ``uri`` (the first one or a failover)."""
        self.attempts.append((uri, now))

    def final(
        self,
        code: int,
        data: bytes,
        codes: Sequence[tuple[int, object]],
        now: float,
        to_tag: str | None,
    ) -> None:
        """The final response ``data`` (its code ``code``) goes to the caller; ``codes`` are
        the finals the failed attempts ended with (the response context's)."""
        self.code = code
        end = data.find(b"\r\n", 12)
        self.reason = data[12:end].decode("utf-8", "replace") if end > 12 else ""
        self.codes = [c for c, _ in codes]
        if code < 300:
            self.status = ANSWERED
            self.answer = now
            self.to_tag = to_tag
            self.codes.append(code)
        else:
            self.status = CANCELLED if code == 487 else FAILED
            if code == 487:
                self.ended_by = "caller"
            self.end = now


class Recorder:
    """Finished records, waiting for the writer thread; bounded: beyond ``capacity`` a
    record is dropped and counted (``dropped``).

    With a ``packer`` (what :class:`pks.cdr.service.CdrService` sets) each finished record is
    queued as the line the spool will hold, made here on the event loop's thread: a few
    microseconds per call, and the writer thread is left with I/O only (a thread that
    formats records would take the interpreter lock from the loop, and its hand-offs cost
    the loop more than the formatting). Without one, the record itself is queued."""

    __slots__ = ("capacity", "dropped", "made", "packer", "queue")

    def __init__(
        self, capacity: int = 100000, packer: Callable[[CallRecord], bytes] | None = None
    ) -> None:
        self.capacity = capacity
        self.packer = packer
        self.queue: deque[CallRecord | bytes] = deque()
        self.made = 0  # records finished and offered to the queue
        self.dropped = 0  # of those, dropped: the queue was full

    def opened(
        self,
        call_id: str,
        from_tag: str,
        caller: str | None,
        called: str | None,
        peer: str | None,
        source_host: str,
        source_port: int,
        setid: int,
        now: float,
    ) -> CallRecord:
        """An initial INVITE routed to ``setid``: its record, filled until the call closes."""
        return CallRecord(
            call_id, from_tag, caller, called, peer, source_host, source_port, setid, now
        )

    def rejected(
        self,
        call_id: str,
        from_tag: str,
        caller: str | None,
        called: str | None,
        source_host: str,
        source_port: int,
        code: int,
        reason: str,
        now: float,
    ) -> None:
        """An initial INVITE answered ``code`` by the proxy itself: a finished record."""
        record = CallRecord(
            call_id, from_tag, caller, called, None, source_host, source_port, 0, now
        )
        record.code, record.reason = code, reason
        record.status, record.ended_by, record.end = REJECTED, "proxy", now
        self.done(record)

    def done(self, record: CallRecord) -> None:
        """The record is finished: queue it (or count it dropped)."""
        self.made += 1
        if len(self.queue) >= self.capacity:
            self.dropped += 1
            return
        packer = self.packer
        self.queue.append(record if packer is None else packer(record))


def pack(
    record_id: str,
    record: CallRecord,
    wall_offset: float,
    worker: int | None = None,
    peer_of: PeerOf | None = None,
) -> list[Any]:
    """What the spool holds of ``record`` (``wall_offset``: wall time − the core's ``now``),
    with its id: its values in :class:`pks.cdr.fields.Packed` order, times already
    wall-clock, nothing formatted — the little the proxy's process does per record;
    :func:`pks.cdr.fields.expand` (in the delivery process) makes it the record's JSON
    object. A refused call's peer tag comes from ``peer_of`` (the live tables)."""
    answer, end = record.answer, record.end
    peer = record.peer
    if peer is None and peer_of is not None:
        peer = peer_of(record.source_host, record.source_port)
    return [
        record_id,
        record.call_id,
        record.status,
        record.start + wall_offset,
        None if answer is None else answer + wall_offset,
        None if end is None else end + wall_offset,
        record.caller,
        record.called,
        peer,
        record.source_host,
        record.source_port,
        record.setid,
        [[uri, at + wall_offset] for uri, at in record.attempts],
        record.codes,
        record.code,
        record.reason,
        record.ended_by,
        record.from_tag,
        record.to_tag,
        worker,
    ]


class Packer:
    """A finished record → its spool line (:attr:`Recorder.packer`): :func:`pack`'s values
    as one JSON array and a newline. Ids are ``prefix`` (a random UUID but its last 12 hex
    digits, one per process) and this packer's count of records."""

    def __init__(
        self,
        prefix: str,
        wall_offset: Callable[[], float],
        worker: int | None = None,
        peer_of: PeerOf | None = None,
    ) -> None:
        self.prefix = prefix
        self.wall_offset = wall_offset
        self.worker = worker
        self.peer_of = peer_of
        self.count = 0  # records packed: the last part of their ids

    def __call__(self, record: CallRecord) -> bytes:
        self.count += 1
        values = pack(
            f"{self.prefix}{self.count:012x}", record, self.wall_offset(), self.worker, self.peer_of
        )
        return orjson.dumps(values, option=orjson.OPT_APPEND_NEWLINE)
