"""Step ④ transaction — the INVITE client transaction (RFC 3261 §17.1.1, Figure 5; RFC 6026 §7.2).

Role: the proxy core creates one per INVITE it forwards (one per branch), calls ``start`` to
send it, feeds it every response matched by ``client_key`` and every due timer, and carries out
the returned effects. The machine holds the request and the ACK as opaque bytes; it never
parses.

States (Figure 5 as amended by RFC 6026 Figure 5)::

    CALLING ──1xx──► PROCEEDING
    CALLING, PROCEEDING ──300-699──► COMPLETED ──Timer D / transport error──► TERMINATED
    CALLING, PROCEEDING ──2xx──────► ACCEPTED ───Timer M────────────────────► TERMINATED
    CALLING ──Timer B / transport error─────────────────────────────────────► TERMINATED

We implement RFC 6026's ACCEPTED state rather than RFC 3261's "2xx → Terminated": 2xx
retransmissions and 2xx from other forks keep matching this transaction for 64*T1 and are
passed up (``Deliver``) so that the proxy forwards each of them. This machine never ACKs a
2xx: that ACK is end to end, sent by the caller's UAC.

Invariants:

* Timer A (retransmission of the INVITE) runs only in CALLING and only over unreliable
  transports; it starts at T1 and doubles with no cap.
* Timer B runs only in CALLING: once a provisional response arrived, only the proxy's own
  fr_inv_timer (RFC 3261 Timer C, outside this machine) bounds the wait for a final response.
* The ACK for a 300-699 response is built by the caller and handed in once; the machine sends
  it, and re-sends it for each retransmission of the final response while COMPLETED.
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

__all__ = ["ClientInviteState", "ClientInviteTransaction"]


class ClientInviteState(enum.Enum):
    """The states of RFC 3261 Figure 5, plus ACCEPTED from RFC 6026."""

    CALLING = "Calling"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


_CALLING: Final = ClientInviteState.CALLING
_PROCEEDING: Final = ClientInviteState.PROCEEDING
_COMPLETED: Final = ClientInviteState.COMPLETED
_ACCEPTED: Final = ClientInviteState.ACCEPTED
_TERMINATED: Final = ClientInviteState.TERMINATED


class ClientInviteTransaction(Deadlines):
    """One INVITE sent downstream and the responses that come back for it."""

    __slots__ = ("_ack", "_reliable", "_request", "_started", "_state", "_timers")

    def __init__(self, request: bytes, *, reliable: bool, timers: Timers = DEFAULT_TIMERS) -> None:
        super().__init__()
        self._request = request
        self._ack = b""
        self._reliable = reliable
        self._timers = timers
        self._state = _CALLING
        self._started = False

    @property
    def state(self) -> ClientInviteState:
        return self._state

    @property
    def terminated(self) -> bool:
        return self._state is _TERMINATED

    def start(self, now: float) -> list[Effect]:
        """Send the INVITE; arm Timer A (unreliable transports) and Timer B."""
        if self._started or self._state is not _CALLING:
            raise RuntimeError("INVITE client transaction already started")
        self._started = True
        timers = self._timers
        if not self._reliable:
            self._rearm(timers.timer_a, now)
        self._end_at = now + timers.timer_b
        return [Transmit(self._request)]

    def on_response(self, status: int, now: float, ack: bytes | None = None) -> list[Effect]:
        """A response matched this transaction.

        ``ack`` is the ACK to send for a 300-699 response. It is required (ValueError otherwise)
        only when such a response ends CALLING or PROCEEDING; later ones reuse the stored ACK, so
        a caller may build it only when ``state`` is CALLING or PROCEEDING.
        """
        if status < 200:
            return self._provisional(status)
        if status < 300:
            return self._success(status, now)
        return self._failure(status, now, ack)

    def on_timer(self, now: float) -> list[Effect]:
        """Fire whatever is due at ``now``: Timer B, D or M first, else Timer A."""
        if self._end_due(now):
            if self._state is _CALLING:
                return [TIMED_OUT, *self._terminate()]
            return self._terminate()
        if self._retransmit_due(now):
            self._rearm(2.0 * self._interval, now)
            return [Transmit(self._request)]
        return []

    def on_transport_error(self, now: float) -> list[Effect]:
        """The transport failed to send the INVITE (CALLING) or the ACK (COMPLETED).

        ``now`` is unused: every event takes the time, for one calling convention.
        """
        if self._state is _CALLING or self._state is _COMPLETED:
            return [TRANSPORT_FAILED, *self._terminate()]
        return []

    def _provisional(self, status: int) -> list[Effect]:
        if self._state is _CALLING:
            self._state = _PROCEEDING
            self._stop_timers()
        elif self._state is not _PROCEEDING:
            return []
        return [Deliver(status)]

    def _success(self, status: int, now: float) -> list[Effect]:
        state = self._state
        if state is _CALLING or state is _PROCEEDING:
            self._state = _ACCEPTED
            self._stop_timers()
            self._request = b""
            self._end_at = now + self._timers.timer_m
        elif state is not _ACCEPTED:
            return []
        return [Deliver(status)]

    def _failure(self, status: int, now: float, ack: bytes | None) -> list[Effect]:
        state = self._state
        if state is _COMPLETED:
            return [Transmit(self._ack)]
        if state is not _CALLING and state is not _PROCEEDING:
            return []
        if ack is None:
            raise ValueError(f"an ACK is needed to complete an INVITE with a {status}")
        self._state = _COMPLETED
        self._stop_timers()
        self._request = b""
        self._ack = ack
        effects: list[Effect] = [Transmit(ack), Deliver(status)]
        wait = self._timers.timer_d(self._reliable)
        if wait > 0.0:
            self._end_at = now + wait
        else:
            effects += self._terminate()
        return effects

    def _terminate(self) -> list[Effect]:
        self._state = _TERMINATED
        self._stop_timers()
        self._request = self._ack = b""
        return [TERMINATED]
