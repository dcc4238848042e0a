"""Step ④ transaction — the non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).

Role: the proxy core creates one when a non-INVITE request arrives that matches no transaction
(``server_key``; a CANCEL is a transaction of its own), then hands it the request
retransmissions that match it, the responses the proxy sends upstream, and every due timer.
Responses are opaque bytes plus their status; the machine never parses.

States (Figure 8)::

    TRYING ──1xx sent──► PROCEEDING ──200-699 sent──► COMPLETED ──Timer J──► TERMINATED
       └───────────────200-699 sent───────────────────────┘
    PROCEEDING, COMPLETED ──transport error──────────────────────────────► TERMINATED

Invariants:

* Request retransmissions are absorbed in TRYING and answered with the last response sent in
  PROCEEDING and COMPLETED; this machine has no retransmission timer of its own.
* Once COMPLETED, further responses from the TU are discarded (RFC 3261 §17.2.2).
* Timer J is 64*T1 over unreliable transports and zero (immediate TERMINATED) over reliable ones.
"""

from __future__ import annotations

import enum
from typing import Final

from pks.transaction.effects import TERMINATED, TRANSPORT_FAILED, Effect, Transmit
from pks.transaction.timers import DEFAULT_TIMERS, Deadlines, Timers

__all__ = ["ServerNonInviteState", "ServerNonInviteTransaction"]


class ServerNonInviteState(enum.Enum):
    """The states of RFC 3261 Figure 8."""

    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    TERMINATED = "Terminated"


_TRYING: Final = ServerNonInviteState.TRYING
_PROCEEDING: Final = ServerNonInviteState.PROCEEDING
_COMPLETED: Final = ServerNonInviteState.COMPLETED
_TERMINATED: Final = ServerNonInviteState.TERMINATED


class ServerNonInviteTransaction(Deadlines):
    """One non-INVITE request received from upstream and the responses sent back for it."""

    __slots__ = ("_last", "_reliable", "_state", "_timers")

    def __init__(self, *, reliable: bool, timers: Timers = DEFAULT_TIMERS) -> None:
        super().__init__()
        self._reliable = reliable
        self._timers = timers
        self._state = _TRYING
        self._last: bytes | None = None

    @property
    def state(self) -> ServerNonInviteState:
        return self._state

    @property
    def terminated(self) -> bool:
        return self._state is _TERMINATED

    def on_retransmission(self, now: float) -> list[Effect]:
        """The request arrived again: re-send the last response, if any; absorb it otherwise.

        ``now`` is unused: every event takes the time, for one calling convention.
        """
        if self._last is not None:
            return [Transmit(self._last)]
        return []

    def send_response(self, status: int, data: bytes, now: float) -> list[Effect]:
        """The proxy sends a response upstream: sent and stored in TRYING and PROCEEDING (a final
        one starts Timer J); discarded in COMPLETED and TERMINATED."""
        state = self._state
        if state is not _TRYING and state is not _PROCEEDING:
            return []
        self._last = data
        effects: list[Effect] = [Transmit(data)]
        if status < 200:
            self._state = _PROCEEDING
            return effects
        self._state = _COMPLETED
        wait = self._timers.timer_j(self._reliable)
        if wait > 0.0:
            self._end_at = now + wait
        else:
            effects += self._terminate()
        return effects

    def on_timer(self, now: float) -> list[Effect]:
        """Fire Timer J if it is due at ``now``."""
        if self._end_due(now):
            return self._terminate()
        return []

    def on_transport_error(self, now: float) -> list[Effect]:
        """The transport failed to send a response (PROCEEDING or COMPLETED).

        ``now`` is unused: every event takes the time, for one calling convention.
        """
        if self._state is _PROCEEDING or self._state is _COMPLETED:
            return [TRANSPORT_FAILED, *self._terminate()]
        return []

    def _terminate(self) -> list[Effect]:
        self._state = _TERMINATED
        self._stop_timers()
        self._last = None
        return [TERMINATED]
