"""A bounded memo for the pure parses that every message of a call repeats.

The same From, To, Contact and Request-URI texts come back in every message of a call, so
`parse_uri` and `parse_name_addr` keep what they parsed. ``functools.lru_cache`` would do it,
but a call through its wrapper is a generic Python call (the compiled core cannot call the
parse directly) and each hit relinks a list; this memo is two plain dicts: hits are found in
the recent generation or, once, in the older one (and moved back to the recent one); when the
recent one is full it becomes the older one and the oldest generation is dropped. At most
``2 * size`` entries, O(1) per lookup, no per-hit bookkeeping. Values must be immutable:
they are shared by every message that parses the same text. Failures are not remembered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Memo", "forget_all"]

V = TypeVar("V")

_clears: list[Callable[[], None]] = []  # of every memo made (a few module constants)


class Memo(Generic[V]):
    """Remembers up to ``2 * size`` values by their text (two generations of ``size``)."""

    __slots__ = ("_new", "_old", "size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a memo holds at least one entry")
        self.size = size
        self._new: dict[str, V] = {}
        self._old: dict[str, V] = {}
        _clears.append(self.clear)

    def get(self, key: str) -> V | None:
        value = self._new.get(key)
        if value is None:
            value = self._old.get(key)
            if value is not None:
                self.put(key, value)
        return value

    def put(self, key: str, value: V) -> V:
        """Remember ``value`` for ``key``; returns ``value``."""
        new = self._new
        if len(new) >= self.size:
            self._old = new
            new = self._new = {}
        new[key] = value
        return value

    def __len__(self) -> int:
        return len(self._new) + len(self._old)

    def clear(self) -> None:
        self._new = {}
        self._old = {}


def forget_all() -> None:
    """Empty every memo (benchmarks replaying the same texts; tests)."""
    for clear in _clears:
        clear()
