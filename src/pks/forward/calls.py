"""Calls in flight and answered, counted for limits (``maxload=`` per gateway, ``max_calls``
per source peer).

Sans-IO bookkeeping beside the transactions. A :class:`Call` opens when an initial INVITE is
relayed: it counts against its source peer (address ``tag``) at once and against the gateway
of the live branch (moved on failover). It closes when the INVITE ends without a 2xx, when a
BYE of its own dialog (Call-ID and both tags, the To tag being the one of the 2xx) comes from
one of its two sides (the caller's address or the gateway's), or — for an answered call whose
BYE we never saw — ``max_duration`` seconds after the answer, so a lost BYE cannot leak a slot
forever. A BYE with a made-up To tag, or from anyone else, frees nothing.

Each call is also tallied for the metrics (``/metrics``) by source peer tag and dispatcher
set: started, answered, failed, cancelled — one :class:`Tally` per (tag, set), found once
when the call opens and incremented in place after that.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, ClassVar, Protocol

from pks.cdr.record import CallRecord, Recorder
from pks.health.state import GatewayStates
from pks.net import Address, Inbound
from pks.route.decision import Target
from pks.sip import Message, ParseError
from pks.transaction.wheel import CALLS

__all__ = ["Call", "CallShare", "CallTable", "Tally"]

log = logging.getLogger("pks.proxy")


class CallShare(Protocol):
    """Per-peer counts kept in common by worker processes (:class:`pks.workers.shared.
    PeerShare`); None in a single process."""

    def count(self, peer: str) -> int: ...
    def set_own(self, peer: str, count: int) -> None: ...
    def missed_bye(
        self, call_id: str, from_tag: str | None, to_tag: str | None, source: str | None
    ) -> None: ...
    def call_up(self, call: Call) -> None: ...
    def call_down(self, call: Call) -> None: ...


class Tally:
    """Calls from one peer tag to one dispatcher set since start-up (never reset)."""

    __slots__ = ("answered", "cancelled", "failed", "peer", "setid", "started")

    def __init__(self, peer: str | None, setid: int) -> None:
        self.peer = peer
        self.setid = setid
        self.started = 0
        self.answered = 0
        self.failed = 0  # ended with a final response >= 300 other than 487
        self.cancelled = 0  # ended with 487 (the caller's CANCEL)

    def row(self) -> list[object]:
        return [self.peer, self.setid, self.started, self.answered, self.failed, self.cancelled]


_NO_TALLY = Tally(None, 0)  # the default of calls opened without one


class Call:
    """One call counted against limits (an explicit ``__init__``: mypyc compiles it)."""

    __slots__ = (
        "answered",
        "call_id",
        "caller",
        "cdr",
        "expires",
        "from_tag",
        "intl",
        "open",
        "peer",
        "tally",
        "target",
        "to_tag",
    )

    def __init__(self, call_id: str, from_tag: str, peer: str | None, caller: str = "") -> None:
        self.call_id = call_id
        self.from_tag = from_tag
        self.peer = peer  # the source's address tag (None: untagged source, not limited)
        self.caller = caller  # the caller's IP address
        self.target: Target | None = None
        self.to_tag: str | None = None  # the callee's tag, from the 2xx
        self.answered = False
        self.open = True
        self.expires: float | None = None
        self.cdr: CallRecord | None = None  # its call record (PKS_CDR_SINKS), queued at close
        self.tally = _NO_TALLY
        self.intl = False  # counted in CallTable.intl_by_peer (max_intl_calls)


class CallTable:
    """Open calls by (Call-ID, tag), with per-peer counts; gateway loads live in ``gateways``.

    With ``share`` set (worker processes), ``peer_count`` is the whole instance's count and
    a BYE for a call held by another worker is passed on to it.
    """

    __slots__ = (
        "_calls",
        "_expiry",
        "by_peer",
        "gateways",
        "intl_by_peer",
        "max_duration",
        "recorder",
        "share",
        "tallies",
    )
    timer_kind: ClassVar[int] = CALLS

    def __init__(self, gateways: GatewayStates, max_duration: float = 14400.0) -> None:
        self.gateways = gateways
        self.max_duration = max_duration
        self._calls: dict[tuple[str, str], Call] = {}
        self._expiry: deque[Call] = deque()
        self.by_peer: dict[str, int] = {}  # not a Counter: its methods run Python code
        self.intl_by_peer: dict[str, int] = {}  # open international calls (max_intl_calls)
        self.share: CallShare | None = None
        self.recorder: Recorder | None = None  # call records on (pks.cdr): calls carry one
        self.tallies: dict[tuple[str | None, int], Tally] = {}  # bounded by the tables

    def __len__(self) -> int:
        return len(self._calls)

    def peer_count(self, peer: str | None) -> int:
        if peer is None:
            return 0
        if self.share is not None:
            return self.share.count(peer)
        return self.by_peer.get(peer, 0)

    def intl_count(self, peer: str) -> int:
        """International calls of ``peer`` open in this process (``max_intl_calls``)."""
        return self.intl_by_peer.get(peer, 0)

    def international(self, call: Call, intl: bool) -> None:
        """Count ``call`` as international (``intl``) until it closes."""
        if intl and call.open and not call.intl and call.peer is not None:
            call.intl = True
            self.intl_by_peer[call.peer] = self.intl_by_peer.get(call.peer, 0) + 1

    def open(
        self, call_id: str, from_tag: str, peer: str | None, caller: str = "", setid: int = 0
    ) -> Call:
        call = Call(call_id, from_tag, peer, caller)
        tally = self.tallies.get((peer, setid))
        if tally is None:
            tally = self.tallies[(peer, setid)] = Tally(peer, setid)
        tally.started += 1
        call.tally = tally
        previous = self._calls.get((call_id, from_tag))
        if previous is not None:
            self.close(previous)
        self._calls[(call_id, from_tag)] = call
        if peer is not None:
            count = self.by_peer[peer] = self.by_peer.get(peer, 0) + 1
            if self.share is not None:
                self.share.set_own(peer, count)
        return call

    def use(self, call: Call, target: Target | None) -> None:
        """The call now goes to ``target`` (first branch or failover)."""
        if not call.open or call.target is target:
            return
        if call.target is not None:
            self.gateways.add_load(call.target, -1)
        call.target = target
        if target is not None:
            self.gateways.add_load(target, +1)

    def restore(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str | None,
        peer: str | None,
        caller: str,
        target: Target | None,
        expires: float,
    ) -> Call:
        """An answered call held by a worker that died (``pks.workers.journal``): counted
        again against its peer and gateway, until its BYE or ``expires``."""
        call = Call(call_id, from_tag, peer, caller)  # not a new call: no tally, no record
        self._calls[(call_id, from_tag)] = call
        if peer is not None:
            count = self.by_peer[peer] = self.by_peer.get(peer, 0) + 1
            if self.share is not None:
                self.share.set_own(peer, count)
        self.use(call, target)
        call.to_tag = to_tag
        call.answered = True
        call.expires = expires
        self._expiry.append(call)
        if self.share is not None:
            self.share.call_up(call)
        return call

    def answered(self, call: Call, now: float) -> None:
        if call.open and not call.answered:
            call.tally.answered += 1
            call.answered = True
            call.expires = now + self.max_duration
            self._expiry.append(call)
            if self.share is not None:
                self.share.call_up(call)

    def fail(self, call: Call, code: int) -> None:
        """The call ended unanswered with the final ``code`` sent to the caller."""
        if call.open and not call.answered:
            if code == 487:
                call.tally.cancelled += 1
            else:
                call.tally.failed += 1
            self.close(call)

    def close(self, call: Call) -> None:
        if not call.open:
            return
        if call.answered and self.share is not None:
            self.share.call_down(call)
        self.use(call, None)
        call.open = False
        if call.intl and call.peer is not None:
            left = self.intl_by_peer.get(call.peer, 0) - 1
            if left > 0:
                self.intl_by_peer[call.peer] = left
            else:
                self.intl_by_peer.pop(call.peer, None)
        if call.cdr is not None and self.recorder is not None:
            self.recorder.done(call.cdr)
            call.cdr = None
        if call.peer is not None:
            count = self.by_peer.get(call.peer, 0) - 1
            if count > 0:
                self.by_peer[call.peer] = count
            else:
                self.by_peer.pop(call.peer, None)
                count = 0
            if self.share is not None:
                self.share.set_own(call.peer, count)
        key = (call.call_id, call.from_tag)
        if self._calls.get(key) is call:
            del self._calls[key]

    def bye(
        self,
        call_id: str,
        from_tag: str | None,
        to_tag: str | None,
        source: str | None,
        now: float = 0.0,
    ) -> None:
        """A BYE from ``source`` (an IP address): close its dialog's call, whichever side
        sent it."""
        closed = self.close_dialog(call_id, from_tag, to_tag, source, now)
        if not closed and self.share is not None:
            self.share.missed_bye(call_id, from_tag, to_tag, source)

    def close_dialog(
        self,
        call_id: str,
        from_tag: str | None,
        to_tag: str | None,
        source: str | None,
        now: float = 0.0,
    ) -> bool:
        """Close the call of that dialog if this table holds it and ``source`` is one of its
        sides; whether it did. Its record says which side hung up: the caller when the BYE's
        From tag is the caller's, else the callee."""
        for tag, other, side in ((from_tag, to_tag, "caller"), (to_tag, from_tag, "callee")):
            if tag is None or (call := self._calls.get((call_id, tag))) is None:
                continue
            if call.to_tag is None or other != call.to_tag:
                return False  # not answered (its final response closes it), or not its dialog
            target = call.target
            callee = target.host if target is not None else None
            if source is not None and source != call.caller and source != callee:
                return False  # not one of its two sides
            if call.cdr is not None:
                call.cdr.end, call.cdr.ended_by = now, side
            self.close(call)
            return True
        return False

    def flush_records(self, now: float) -> int:
        """The proxy stops: queue the records of the calls still open (ended ``stopped`` at
        ``now``, answered or not); the calls stay counted. Returns how many."""
        if self.recorder is None:
            return 0
        flushed = 0
        for call in self._calls.values():
            cdr = call.cdr
            if cdr is not None:
                cdr.end, cdr.ended_by = now, "stopped"
                self.recorder.done(cdr)
                call.cdr = None
                flushed += 1
        return flushed

    def deadline(self) -> float | None:
        while self._expiry and not self._expiry[0].open:
            self._expiry.popleft()
        return self._expiry[0].expires if self._expiry else None

    def on_timer(self, now: float, out: list[Any]) -> None:
        """The timer of answered calls (a ``TimerHub`` handler, ``CallTable.on_timer``):
        expire those whose BYE never came."""
        if self.expire(now):
            log.info("call limits: answered calls without BYE expired")

    def expire(self, now: float) -> int:
        gone = 0
        while self._expiry and (not self._expiry[0].open or (self._expiry[0].expires or 0) <= now):
            call = self._expiry.popleft()
            if call.open:
                if call.cdr is not None:
                    call.cdr.end, call.cdr.ended_by = now, "expired"
                self.close(call)
                gone += 1
        return gone

    # ---- call records (pks.cdr; off, ``recorder`` None is their whole cost) -----------------
    def record_opened(
        self,
        call: Call,
        msg: Message,
        user: str | None,
        peer_tag: str | None,
        setid: int,
        src: Address,
        now: float,
    ) -> None:
        """An initial INVITE routed: its call record begins."""
        recorder = self.recorder
        if recorder is not None:
            caller = msg.from_.uri.user
            call.cdr = recorder.opened(
                msg.call_id,
                msg.from_tag or "",
                caller,
                user,
                peer_tag,
                src.host,
                src.port,
                setid,
                now,
            )

    def record_rejected(
        self, msg: Message, inbound: Inbound, code: int, reason: str, now: float
    ) -> None:
        """An initial INVITE refused by the proxy: its call record."""
        recorder = self.recorder
        if recorder is None or msg.method != "INVITE":
            return
        try:
            from_tag, caller = msg.from_tag or "", msg.from_.uri.user
            user = msg.uri.user_decoded if msg.uri.is_sip else None
        except ParseError:
            from_tag, caller, user = "", None, None
        src = inbound.source
        recorder.rejected(
            msg.call_id, from_tag, caller, user, src.host, src.port, code, reason, now
        )

    def limit_counts(self, limits: dict[str, int]) -> dict[str, object]:
        """Calls counted against limits: per source peer tag (``limits``: their
        ``max_calls``) and per gateway."""
        return {
            "calls": len(self),
            "peers": {
                tag: {"calls": self.by_peer.get(tag, 0), "max_calls": limits.get(tag)}
                for tag in sorted(set(self.by_peer) | set(limits))
            },
            "gateways": [
                {"setid": key[0], "uri": key[1], "socket": key[2], "calls": load}
                for key, load in self.gateways.loads()
            ],
        }
