"""Role: how Python's cyclic garbage collector runs in a proxy process.

A proxy's heap is mostly long-lived and acyclic: modules, settings and the routing snapshot
(up to millions of objects with large tables), plus the transactions of the last 32 s (RFC
3261 Timers J and D keep every finished transaction that long). Left at its defaults, the
collector walks all of it again and again: a collection every 700 allocations, a full one
(about 150 ms with 10 000 calls in their wait timers, seconds with a million dialplan rules)
whenever the old generation grew by a quarter — about 12 % of the proxy's CPU at a few
hundred calls/s, and stalls of the event loop.

* `tune` (start-up): a young generation of 10 000 objects, older generations collected 50
  and 100 times less often. The proxy's own messages and transactions form almost no cycles
  (the branch ↔ context link is cut when a transaction ends), so this costs little memory.
* `settle` (start-up, after each new snapshot): ``gc.freeze()`` moves everything alive out
  of the collector's sight for good. Frozen objects are still freed by reference counting:
  the snapshot a reload replaces has no cycles and goes away as it should.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "settle", "tune"]

THRESHOLDS = (10_000, 50, 100)


def tune() -> None:
    """Set the collector's thresholds for a proxy process (see the module docstring)."""
    gc.set_threshold(*THRESHOLDS)


def settle(collect: bool = False) -> None:
    """Freeze what is alive now (with ``collect``: after a full collection, at start-up)."""
    if collect:
        gc.collect()
    gc.freeze()
