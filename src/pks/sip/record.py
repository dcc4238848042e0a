"""Role: the base of the small immutable values built for every message (Via, CSeq, …).

A frozen dataclass would do, but its generated ``__init__`` stays interpreted bytecode even
when the module is compiled (mypyc), and calls ``object.__setattr__`` per field: about a
microsecond per object, several per message. A `Record` subclass writes a plain ``__init__``
(compiled) and lists its fields in ``_fields``; equality, hash and repr follow from them, as
a frozen dataclass's would.

Invariant: nothing assigns a field after ``__init__`` (values are shared by the parse caches).
"""

from __future__ import annotations

__all__ = ["Record"]


class Record:
    """Equality, hash and repr over ``_fields()`` (same type and same field values)."""

    __slots__ = ()

    def _fields(self) -> tuple[object, ...]:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._fields()!r}"
