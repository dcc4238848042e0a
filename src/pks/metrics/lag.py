"""Event-loop lag: how late the loop runs a timer, measured by a timer of our own.

Every ``interval`` seconds :class:`LoopLag` asks the loop to call it back at a given
instant and records how much later the call came. A loop busy with messages, a long
synchronous step (a garbage collection, a big JSON answer) or a starved CPU all show here,
and every message waiting in the sockets meanwhile waited that long too. One sampler per
process (worker processes each have theirs); it costs one wake-up per ``interval``.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["LoopLag"]


class LoopLag:
    """The last lag measured and the largest of the last ``window`` samples, in seconds."""

    def __init__(self, interval: float = 0.5, window: int = 20) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=window)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    @property
    def last(self) -> float:
        return self.samples[-1] if self.samples else 0.0

    @property
    def max(self) -> float:
        """The worst lag of the last ``window × interval`` seconds."""
        return max(self.samples, default=0.0)

    def start(self) -> None:
        """Begin sampling on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._arm()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._loop = None

    def _arm(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._due = loop.time() + self.interval
        self._handle = loop.call_at(self._due, self._tick)

    def _tick(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self.samples.append(max(0.0, loop.time() - self._due))
        self._arm()
