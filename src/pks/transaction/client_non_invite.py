"""Step ④ transaction — the non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).

Role: the proxy core creates one per non-INVITE request it forwards (BYE, OPTIONS, REGISTER…,
and the CANCEL it sends for a pending INVITE branch, which is a transaction of its own), calls
``start`` to send it, feeds it every response matched by ``client_key`` and every due timer, and
carries out the returned effects. The request is opaque bytes; the machine never parses.

States (Figure 6)::

    TRYING ──1xx──► PROCEEDING ──200-699──► COMPLETED ──Timer K──► TERMINATED
       └──────────200-699─────────────────────┘
    TRYING, PROCEEDING ──Timer F / transport error──────────────► TERMINATED

Invariants:

* Timer E (retransmission) runs over unreliable transports only, in TRYING and PROCEEDING. It
  starts at T1 and doubles up to T2 in TRYING; once PROCEEDING, each firing re-arms it at T2.
* Timer F runs in TRYING and PROCEEDING; its expiry is a timeout the TU treats as a 408.
* Responses in COMPLETED are retransmissions and are absorbed.
"""

from __future__ import annotations

import enum
from typing import Final

from pks.transaction.effects import (
    TERMINATED,
    TIMED_OUT,
    TRANSPORT_FAILED,
    Deliver,
    Effect,
    Transmit,
)
from pks.transaction.timers import DEFAULT_TIMERS, Deadlines, Timers

__all__ = ["ClientNonInviteState", "ClientNonInviteTransaction"]


class ClientNonInviteState(enum.Enum):
    """The states of RFC 3261 Figure 6."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


_TRYING: Final = ClientNonInviteState.TRYING
_PROCEEDING: Final = ClientNonInviteState.PROCEEDING
_COMPLETED: Final = ClientNonInviteState.COMPLETED
_TERMINATED: Final = ClientNonInviteState.TERMINATED


class ClientNonInviteTransaction(Deadlines):
    """One non-INVITE request sent downstream and the responses that come back for it."""

    __slots__ = ("_reliable", "_request", "_started", "_state", "_timers")

    def __init__(self, request: bytes, *, reliable: bool, timers: Timers = DEFAULT_TIMERS) -> None:
        super().__init__()
        self._request = request
        self._reliable = reliable
        self._timers = timers
        self._state = _TRYING
        self._started = False

    @property
    def state(self) -> ClientNonInviteState:
        return self._state

    @property
    def terminated(self) -> bool:
        return self._state is _TERMINATED

    def start(self, now: float) -> list[Effect]:
        """Send the request; arm Timer E (unreliable transports) and Timer F."""
        if self._started or self._state is not _TRYING:
            raise RuntimeError("non-INVITE client transaction already started")
        self._started = True
        timers = self._timers
        if not self._reliable:
            self._rearm(timers.timer_e, now)
        self._end_at = now + timers.timer_f
        return [Transmit(self._request)]

    def on_response(self, status: int, now: float, ack: bytes | None = None) -> list[Effect]:
        """A response matched this transaction.

        ``ack`` is ignored (only INVITE has an ACK); it is accepted so that both client
        machines share one signature.
        """
        state = self._state
        if state is not _TRYING and state is not _PROCEEDING:
            return []
        if status < 200:
            self._state = _PROCEEDING
            return [Deliver(status)]
        self._state = _COMPLETED
        self._stop_timers()
        self._request = b""
        effects: list[Effect] = [Deliver(status)]
        wait = self._timers.timer_k(self._reliable)
        if wait > 0.0:
            self._end_at = now + wait
        else:
            effects += self._terminate()
        return effects

    def on_timer(self, now: float) -> list[Effect]:
        """Fire whatever is due at ``now``: Timer F or K first, else Timer E."""
        if self._end_due(now):
            if self._state is _COMPLETED:
                return self._terminate()
            return [TIMED_OUT, *self._terminate()]
        if self._retransmit_due(now):
            timers = self._timers
            if self._state is _PROCEEDING:
                self._rearm(timers.t2, now)
            else:
                self._rearm(timers.backoff(self._interval), now)
            return [Transmit(self._request)]
        return []

    def on_transport_error(self, now: float) -> list[Effect]:
        """The transport failed to send the request (TRYING or PROCEEDING).

        ``now`` is unused: every event takes the time, for one calling convention.
        """
        if self._state is _TRYING or self._state is _PROCEEDING:
            return [TRANSPORT_FAILED, *self._terminate()]
        return []

    def _terminate(self) -> list[Effect]:
        self._state = _TERMINATED
        self._stop_timers()
        self._request = b""
        return [TERMINATED]
