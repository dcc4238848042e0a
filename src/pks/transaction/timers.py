"""Step ④ transaction — timer values (RFC 3261 §17, Table 4; RFC 6026 §8.11) and timer slots.

Role: the configuration every transaction machine reads its durations from, plus the two
deadline slots each machine keeps. Nothing here reads a clock: a machine turns a duration into a
deadline by adding it to the ``now`` it was given.

Invariants:

* ``0 < t1 <= t2`` and ``t4 > 0`` (checked when a ``Timers`` is built).
* In any state a machine runs at most two timers: one *retransmission* timer (A, E or G, over
  unreliable transports only) and one *end* timer whose expiry leaves the state for good
  (B, D, F, H, I, J, K, L or M). ``Deadlines`` holds exactly those two, so the next deadline of
  a transaction is the smaller of two floats.
* Timers that RFC 3261 sets to "zero seconds for reliable transports" (D, I, J, K) are returned
  as ``0.0``; the machines then terminate at once instead of arming a timer for ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_TIMERS", "Deadlines", "Timers"]

# RFC 3261 §17.1.1.2: Timer D is "at least 32 seconds for unreliable transports".
_TIMER_D_FLOOR: Final = 32.0


@dataclass(frozen=True, slots=True)
class Timers:
    """T1, T2, T4 in seconds and the timers A–M derived from them (RFC 3261 Table 4).

    Retransmission timers (``timer_a``, ``timer_e``, ``timer_g``) give the *first* interval; A
    then doubles without a cap, E and G grow with ``backoff`` (doubling, capped at T2).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 < self.t1 <= self.t2:
            raise ValueError(f"timers need 0 < T1 <= T2, got T1={self.t1} T2={self.t2}")
        if not self.t4 > 0.0:
            raise ValueError(f"timers need T4 > 0, got T4={self.t4}")

    @property
    def timer_a(self) -> float:
        """INVITE request retransmission, first interval (T1); doubles each time, no cap."""
        return self.t1

    @property
    def timer_b(self) -> float:
        """INVITE client transaction timeout in Calling: 64*T1."""
        return 64.0 * self.t1

    def timer_d(self, reliable: bool) -> float:
        """INVITE client wait for final-response retransmissions in Completed.

        RFC 3261 asks for "at least 32 s" over UDP; we use max(32 s, 64*T1) so that it also
        covers a server's Timer H when T1 is raised. Zero over reliable transports.
        """
        return 0.0 if reliable else max(_TIMER_D_FLOOR, 64.0 * self.t1)

    @property
    def timer_e(self) -> float:
        """Non-INVITE request retransmission, first interval (T1); then ``backoff``."""
        return self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE client transaction timeout: 64*T1."""
        return 64.0 * self.t1

    @property
    def timer_g(self) -> float:
        """INVITE final-response retransmission, first interval (T1); then ``backoff``."""
        return self.t1

    @property
    def timer_h(self) -> float:
        """INVITE server wait for the ACK in Completed: 64*T1."""
        return 64.0 * self.t1

    def timer_i(self, reliable: bool) -> float:
        """INVITE server wait for ACK retransmissions in Confirmed: T4, zero if reliable."""
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        """Non-INVITE server wait for request retransmissions: 64*T1, zero if reliable."""
        return 0.0 if reliable else 64.0 * self.t1

    def timer_k(self, reliable: bool) -> float:
        """Non-INVITE client wait for response retransmissions: T4, zero if reliable."""
        return 0.0 if reliable else self.t4

    @property
    def timer_l(self) -> float:
        """INVITE server lifetime in Accepted (RFC 6026): 64*T1 on every transport."""
        return 64.0 * self.t1

    @property
    def timer_m(self) -> float:
        """INVITE client lifetime in Accepted (RFC 6026): 64*T1 on every transport."""
        return 64.0 * self.t1

    def backoff(self, interval: float) -> float:
        """Next Timer E/G interval: MIN(2*interval, T2) (RFC 3261 §17.1.2.2, §17.2.1)."""
        doubled = 2.0 * interval
        return doubled if doubled < self.t2 else self.t2


DEFAULT_TIMERS: Final = Timers()


class Deadlines:
    """The two deadline slots of a transaction machine: retransmission and end.

    Subclasses set ``_retransmit_at`` (with the current ``_interval``) and ``_end_at`` as they
    enter states, and clear them with ``_stop_timers``. A deadline is an absolute instant on the
    caller's clock.
    """

    __slots__ = ("_end_at", "_interval", "_retransmit_at")

    def __init__(self) -> None:
        self._retransmit_at: float | None = None
        self._interval = 0.0
        self._end_at: float | None = None

    def next_deadline(self) -> float | None:
        """The earliest instant at which ``on_timer`` has work to do, or None."""
        retransmit, end = self._retransmit_at, self._end_at
        if retransmit is None:
            return end
        if end is None or retransmit < end:
            return retransmit
        return end

    def _retransmit_due(self, now: float) -> bool:
        return self._retransmit_at is not None and now >= self._retransmit_at

    def _end_due(self, now: float) -> bool:
        return self._end_at is not None and now >= self._end_at

    def _rearm(self, interval: float, now: float) -> None:
        # Re-armed from ``now``, not from the missed deadline: a late call retransmits once and
        # never leaves a deadline in the past (no burst of catch-up retransmissions).
        self._interval = interval
        self._retransmit_at = now + interval

    def _stop_timers(self) -> None:
        self._retransmit_at = None
        self._end_at = None
