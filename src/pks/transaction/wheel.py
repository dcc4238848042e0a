"""Step ④ transaction — one timer wheel for every deadline the proxy core keeps.

Role: transactions, the proxy's fr_timer, gateway probes and the call table each have a next
deadline; the core arms it here and its I/O edge sets one wake-up at ``next_deadline()``. On
each wake-up ``pop_due(now)`` hands back what is due.

Deadlines are rounded *up* to a grid of ``tick`` seconds (10 ms by default: far below T1's
500 ms, and the granularity of one event-loop wake-up). Each grid slot holds a plain list of
items; a small heap orders only the slots in use (at most one per tick of the longest timer,
e.g. 3 200 for 32 s) instead of every armed deadline (hundreds of thousands under load). Arming
into a slot that exists is a dict lookup and a list append; popping a slot is one heap pop for
all its items.

Invariants:

* an item is *armed* at one slot at most, the earliest asked for: arming it later than it
  already is changes nothing (its owner re-arms it when it fires and finds its real deadline
  further on);
* re-arming earlier leaves the item in the later slot's list too; it counts only in the slot
  its arming record names (lazy invalidation), so a stale entry costs one dict lookup when its
  slot pops;
* ``pop_due(now)`` returns each due item once, in slot order, and disarms it;
* the wheel holds a reference to every armed item, so the ``id`` its record is keyed by cannot be
  reused while the record exists.
"""

from __future__ import annotations

import heapq
import math
from typing import Final, Generic, Protocol, TypeVar

__all__ = ["BRANCH", "CALLS", "PROBES", "SERVER", "TICK", "TimerHub", "TimerWheel"]

T = TypeVar("T")

TICK: Final = 0.01  # seconds per slot


class TimerWheel(Generic[T]):
    """Items armed at deadlines, returned by ``pop_due`` once their slot's time has come."""

    __slots__ = ("_armed", "_slots", "_tick", "_ticks")

    def __init__(self, tick: float = TICK) -> None:
        if not tick > 0:
            raise ValueError(f"tick must be positive, not {tick!r}")
        self._tick = tick
        self._slots: dict[int, list[T]] = {}
        self._ticks: list[int] = []  # heap of the slot numbers in ``_slots``
        self._armed: dict[int, int] = {}  # id(item) -> its slot

    def __len__(self) -> int:
        """How many items are armed."""
        return len(self._armed)

    def arm(self, item: T, when: float) -> None:
        """Make ``item`` due at ``when`` (rounded up to the grid), unless it is due sooner."""
        slot = math.ceil(when / self._tick)
        armed = self._armed
        key = id(item)
        current = armed.get(key)
        if current is not None and current <= slot:
            return
        armed[key] = slot
        items = self._slots.get(slot)
        if items is None:
            self._slots[slot] = [item]
            heapq.heappush(self._ticks, slot)
        else:
            items.append(item)

    def armed_at(self, item: T) -> float | None:
        """The time of the slot ``item`` is armed at, or None."""
        slot = self._armed.get(id(item))
        return None if slot is None else slot * self._tick

    def next_deadline(self) -> float | None:
        """The time of the earliest slot in use (it may hold only stale entries), or None."""
        ticks = self._ticks
        return ticks[0] * self._tick if ticks else None

    def pop_due(self, now: float) -> list[T]:
        """The items of every slot whose time is at or before ``now``, disarmed."""
        ticks = self._ticks
        limit = math.floor(now / self._tick)
        due: list[T] = []
        if not ticks or ticks[0] > limit:
            return due
        slots = self._slots
        armed = self._armed
        while ticks and ticks[0] <= limit:
            slot = heapq.heappop(ticks)
            for item in slots.pop(slot):
                key = id(item)
                if armed.get(key) == slot:
                    del armed[key]
                    due.append(item)
        return due


class Timed(Protocol):
    """Something the core keeps a deadline for: its kind (which owner fires it) and its next
    deadline."""

    @property
    def timer_kind(self) -> int: ...

    def deadline(self) -> float | None: ...


# the kinds of timed things; the spine (pks.proxy) hands each due one to its kind's owner
SERVER: Final = 0  # a server transaction or response context (pks.forward.relay)
BRANCH: Final = 1  # a client transaction (pks.forward.relay)
PROBES: Final = 2  # the keepalive schedule (pks.health.prober)
CALLS: Final = 3  # answered calls' expiry (pks.forward.calls)


class TimerHub:
    """One `TimerWheel` for every deadline of the core: owners arm their timed things here
    (at each one's own ``deadline()``), and the spine takes the due ones out and hands each to
    the owner of its ``timer_kind``. It holds no handler itself: no reference from the hub
    back to an owner, so nothing of the core forms a reference cycle (pks.heap)."""

    __slots__ = ("wheel",)

    def __init__(self) -> None:
        self.wheel: TimerWheel[Timed] = TimerWheel()

    def arm(self, holder: Timed) -> None:
        """Arm ``holder`` at its deadline (nothing when it has none)."""
        when = holder.deadline()
        if when is not None:
            self.wheel.arm(holder, when)

    def next_deadline(self) -> float | None:
        return self.wheel.next_deadline()

    def due(self, now: float) -> list[Timed]:
        """The holders due at ``now`` (disarmed: fire each, then ``arm`` it again)."""
        return self.wheel.pop_due(now)
