"""Test helper: fire a machine's timers on a fake clock, each at its exact deadline."""

from __future__ import annotations

from typing import Protocol

from pks.transaction import Effect, Transmit

# Every run is bounded: no machine fires more timers than this in one test.
_MAX_FIRINGS = 1000


class Timed(Protocol):
    def next_deadline(self) -> float | None: ...

    def on_timer(self, now: float) -> list[Effect]: ...


def run_timers(txn: Timed, until: float) -> list[tuple[float, Effect]]:
    """Fire every timer due up to ``until`` at its deadline; return (instant, effect) pairs."""
    log: list[tuple[float, Effect]] = []
    for _ in range(_MAX_FIRINGS):
        deadline = txn.next_deadline()
        if deadline is None or deadline > until:
            return log
        log.extend((deadline, effect) for effect in txn.on_timer(deadline))
    raise AssertionError("timers did not settle")


def transmit_times(log: list[tuple[float, Effect]]) -> list[float]:
    return [at for at, effect in log if isinstance(effect, Transmit)]


def non_transmits(log: list[tuple[float, Effect]]) -> list[tuple[float, Effect]]:
    return [(at, effect) for at, effect in log if not isinstance(effect, Transmit)]
