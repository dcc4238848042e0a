"""Calls in flight and answered, counted for limits (``maxload=`` per gateway, ``max_calls``
per source peer).

Sans-IO bookkeeping beside the transactions. A :class:`Call` opens when an initial INVITE is
relayed: it counts against its source peer (address ``tag``) at once and against the gateway
of the live branch (moved on failover). It closes when the INVITE ends without a 2xx, when a
BYE of its dialog is seen (either direction), or — for an answered call whose BYE we never
saw — ``max_duration`` seconds after the answer, so a lost BYE cannot leak a slot forever.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from pks.health.state import GatewayStates
from pks.route.decision import Target

__all__ = ["Call", "CallShare", "CallTable"]


class CallShare(Protocol):
    """Per-peer counts kept in common by worker processes (:class:`pks.workers.shared.
    PeerShare`); None in a single process."""

    def count(self, peer: str) -> int: ...
    def set_own(self, peer: str, count: int) -> None: ...
    def missed_bye(self, call_id: str, from_tag: str | None, to_tag: str | None) -> None: ...


class Call:
    """One call counted against limits (an explicit ``__init__``: mypyc compiles it)."""

    __slots__ = ("answered", "call_id", "expires", "from_tag", "open", "peer", "target")

    def __init__(self, call_id: str, from_tag: str, peer: str | None) -> None:
        self.call_id = call_id
        self.from_tag = from_tag
        self.peer = peer  # the source's address tag (None: untagged source, not limited)
        self.target: Target | None = None
        self.answered = False
        self.open = True
        self.expires: float | None = None


class CallTable:
    """Open calls by (Call-ID, tag), with per-peer counts; gateway loads live in ``gateways``.

    With ``share`` set (worker processes), ``peer_count`` is the whole instance's count and
    a BYE for a call held by another worker is passed on to it.
    """

    __slots__ = ("_calls", "_expiry", "by_peer", "gateways", "max_duration", "share")

    def __init__(self, gateways: GatewayStates, max_duration: float = 14400.0) -> None:
        self.gateways = gateways
        self.max_duration = max_duration
        self._calls: dict[tuple[str, str], Call] = {}
        self._expiry: deque[Call] = deque()
        self.by_peer: dict[str, int] = {}  # not a Counter: its methods run Python code
        self.share: CallShare | None = None

    def __len__(self) -> int:
        return len(self._calls)

    def peer_count(self, peer: str | None) -> int:
        if peer is None:
            return 0
        if self.share is not None:
            return self.share.count(peer)
        return self.by_peer.get(peer, 0)

    def open(self, call_id: str, from_tag: str, peer: str | None) -> Call:
        call = Call(call_id, from_tag, peer)
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

    def answered(self, call: Call, now: float) -> None:
        if call.open and not call.answered:
            call.answered = True
            call.expires = now + self.max_duration
            self._expiry.append(call)

    def close(self, call: Call) -> None:
        if not call.open:
            return
        self.use(call, None)
        call.open = False
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

    def bye(self, call_id: str, from_tag: str | None, to_tag: str | None) -> None:
        """A BYE of a dialog: close its call, whichever side sent it."""
        if not self.close_dialog(call_id, from_tag, to_tag) and self.share is not None:
            self.share.missed_bye(call_id, from_tag, to_tag)

    def close_dialog(self, call_id: str, from_tag: str | None, to_tag: str | None) -> bool:
        """Close the call of that dialog if this table holds it; whether it did."""
        for tag in (from_tag, to_tag):
            if tag is not None and (call := self._calls.get((call_id, tag))) is not None:
                self.close(call)
                return True
        return False

    def deadline(self) -> float | None:
        while self._expiry and not self._expiry[0].open:
            self._expiry.popleft()
        return self._expiry[0].expires if self._expiry else None

    def expire(self, now: float) -> int:
        gone = 0
        while self._expiry and (not self._expiry[0].open or (self._expiry[0].expires or 0) <= now):
            call = self._expiry.popleft()
            if call.open:
                self.close(call)
                gone += 1
        return gone
