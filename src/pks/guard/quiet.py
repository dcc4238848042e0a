"""At most a few log lines per window about refused or dropped messages.

A line per hostile packet is itself a flood (a disk filled, a journal rate-limited so the
lines that matter are lost). Each refusal is still counted in the proxy's stats; only its
log line is subject to the budget, and the lines held back are summed up once per window.
"""

from __future__ import annotations

import logging

__all__ = ["Quiet"]


class Quiet:
    """``burst`` lines per ``window`` seconds; ``ok()`` says whether one more may be logged."""

    __slots__ = ("_left", "_until", "burst", "held", "log", "window")

    def __init__(self, log: logging.Logger, burst: int = 20, window: float = 10.0) -> None:
        self.log = log
        self.burst = burst
        self.window = window
        self._until = 0.0
        self._left = burst
        self.held = 0  # lines not logged in the current window

    def tick(self, now: float) -> None:
        """Start a new window when the current one is over (one comparison per message)."""
        if now < self._until:
            return
        if self.held:
            self.log.info("%d more refused or dropped messages not logged", self.held)
            self.held = 0
        self._until = now + self.window
        self._left = self.burst

    def ok(self) -> bool:
        if self._left > 0:
            self._left -= 1
            return True
        self.held += 1
        return False
