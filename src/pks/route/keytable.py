"""Step ⑤b helper: the str → value table the dialplan index probes.

``KeyTable(mapping).get(subject, length)`` is ``mapping.get(subject[:length])`` (the whole
subject when ``length`` < 0). This is the pure-Python table, a dict; when the accelerator is
built (``python -m pks.accel build``), :mod:`pks.route.dialplan_index` uses the C one
(pks/route/_keytable.c), which answers the same without making the slice and reads one cache
line per probe instead of the four places a dict hit reads — what keeps a lookup in a million
rules close to one in ten.
"""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["KeyTable"]

V = TypeVar("V")


class KeyTable(Generic[V]):
    """A read-only str → value table."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: dict[str, V]) -> None:
        self._mapping = mapping

    def get(self, subject: str, length: int = -1) -> V | None:
        """The value of key ``subject[:length]`` (``subject`` when ``length`` < 0), or None."""
        return self._mapping.get(subject if length < 0 else subject[:length])

    def __len__(self) -> int:
        return len(self._mapping)
