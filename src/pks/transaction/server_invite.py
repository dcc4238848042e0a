"""Step ④ transaction — the INVITE server transaction (RFC 3261 §17.2.1, Figure 7; RFC 6026 §7.1).

Role: the proxy core creates one when an INVITE arrives that matches no transaction
(``server_key``), then hands it the request retransmissions and ACKs that match it, the
responses the proxy sends upstream, and every due timer. Responses are opaque bytes plus their
status; the machine never parses. RFC 3261 wants a 100 (Trying) within 200 ms: the proxy sends
it through ``send_response`` like any provisional response, so it is replayed on retransmission.

States (Figure 7 as amended by RFC 6026 Figure 7)::

    PROCEEDING ──300-699 sent──► COMPLETED ──ACK──► CONFIRMED ──Timer I──► TERMINATED
        │                            └──Timer H / transport error─────────► TERMINATED
        └──2xx sent──► ACCEPTED ──Timer L───────────────────────────────► TERMINATED

We implement RFC 6026's ACCEPTED state rather than RFC 3261's "2xx → Terminated": for 64*T1
after a 2xx, INVITE retransmissions still match this transaction and are absorbed (not seen as
new INVITEs), further 2xx (retransmissions from downstream, other forks) are sent, and an ACK
that matches is passed up (``DeliverAck``) rather than absorbed.

Which responses ``send_response`` sends (it never raises):

* PROCEEDING: all; 1xx are stored and replayed on request retransmission.
* ACCEPTED, COMPLETED, CONFIRMED: 2xx only. RFC 3261 §16.7 step 5 has a proxy forward every 2xx
  to an INVITE even after a final response; once a non-2xx final has gone, the transaction no
  longer owns it, so the 2xx is sent as-is and not stored (what a stateless forward would do).
  Any other response after a final is dropped: a proxy must not forward it (§16.7 step 5).
* TERMINATED: none (the transaction is gone from the table; the proxy forwards statelessly).

Invariants: Timer G runs only in COMPLETED over unreliable transports, from T1 doubling up to
T2; the stored final response is what G and request retransmissions re-send.
"""

from __future__ import annotations

import enum
from typing import Final

from pks.transaction.effects import (
    DELIVER_ACK,
    TERMINATED,
    TIMED_OUT,
    TRANSPORT_FAILED,
    Effect,
    Transmit,
)
from pks.transaction.timers import DEFAULT_TIMERS, Deadlines, Timers

__all__ = ["ServerInviteState", "ServerInviteTransaction"]


class ServerInviteState(enum.Enum):
    """The states of RFC 3261 Figure 7, plus ACCEPTED from RFC 6026."""

    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


_PROCEEDING: Final = ServerInviteState.PROCEEDING
_COMPLETED: Final = ServerInviteState.COMPLETED
_CONFIRMED: Final = ServerInviteState.CONFIRMED
_ACCEPTED: Final = ServerInviteState.ACCEPTED
_TERMINATED: Final = ServerInviteState.TERMINATED


class ServerInviteTransaction(Deadlines):
    """One INVITE received from upstream and the responses the proxy sends back for it."""

    __slots__ = ("_last", "_reliable", "_state", "_timers")

    def __init__(self, *, reliable: bool, timers: Timers = DEFAULT_TIMERS) -> None:
        super().__init__()
        self._reliable = reliable
        self._timers = timers
        self._state = _PROCEEDING
        self._last: bytes | None = None

    @property
    def state(self) -> ServerInviteState:
        return self._state

    @property
    def terminated(self) -> bool:
        return self._state is _TERMINATED

    def on_retransmission(self, now: float) -> list[Effect]:
        """The INVITE arrived again: re-send the last provisional (PROCEEDING) or the final
        response (COMPLETED); absorb it otherwise.

        ``now`` is unused: every event takes the time, for one calling convention.
        """
        state = self._state
        last = self._last
        if last is not None and (state is _PROCEEDING or state is _COMPLETED):
            return [Transmit(last)]
        return []

    def send_response(self, status: int, data: bytes, now: float) -> list[Effect]:
        """The proxy sends a response upstream; see the module docstring for which are sent."""
        state = self._state
        if state is _PROCEEDING:
            if status < 200:
                self._last = data
            elif status < 300:
                self._state = _ACCEPTED
                self._last = None
                self._end_at = now + self._timers.timer_l
            else:
                self._complete(data, now)
            return [Transmit(data)]
        if 200 <= status < 300 and state is not _TERMINATED:
            return [Transmit(data)]
        return []

    def on_ack(self, now: float) -> list[Effect]:
        """An ACK matched: it confirms a 300-699 (COMPLETED → CONFIRMED), goes up to the TU in
        ACCEPTED (RFC 6026 §8.7), and is absorbed in any other state."""
        state = self._state
        if state is _COMPLETED:
            self._state = _CONFIRMED
            self._stop_timers()
            self._last = None
            wait = self._timers.timer_i(self._reliable)
            if wait > 0.0:
                self._end_at = now + wait
                return []
            return self._terminate()
        if state is _ACCEPTED:
            return [DELIVER_ACK]
        return []

    def on_timer(self, now: float) -> list[Effect]:
        """Fire whatever is due at ``now``: Timer H, I or L first, else Timer G."""
        if self._end_due(now):
            if self._state is _COMPLETED:
                return [TIMED_OUT, *self._terminate()]
            return self._terminate()
        if self._retransmit_due(now) and self._last is not None:
            self._rearm(self._timers.backoff(self._interval), now)
            return [Transmit(self._last)]
        return []

    def on_transport_error(self, now: float) -> list[Effect]:
        """The transport failed to send a response. Per RFC 6026 Figure 7 the TU is told in
        PROCEEDING and ACCEPTED, which carry on; COMPLETED terminates.

        ``now`` is unused: every event takes the time, for one calling convention.
        """
        state = self._state
        if state is _PROCEEDING or state is _ACCEPTED:
            return [TRANSPORT_FAILED]
        if state is _COMPLETED:
            return [TRANSPORT_FAILED, *self._terminate()]
        return []

    def _complete(self, data: bytes, now: float) -> None:
        self._state = _COMPLETED
        self._last = data
        timers = self._timers
        if not self._reliable:
            self._rearm(timers.timer_g, now)
        self._end_at = now + timers.timer_h

    def _terminate(self) -> list[Effect]:
        self._state = _TERMINATED
        self._stop_timers()
        self._last = None
        return [TERMINATED]
