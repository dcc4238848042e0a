"""Step ⑤b helper: find the first matching rule of an ordered list without testing them all.

Kamailio tests the rules of one ``match_len`` group in ``(pr, id)`` order and stops at the
first match. :class:`RuleIndex` returns the same rule — the lowest-ranked rule whose test
passes — while testing only rules that can match:

* exact rules (``match_op`` 0) sit in a table keyed by their whole text;
* rules whose every match starts with a known literal (anchored regex ``^123…``, shell
  pattern ``123*``) sit in buckets keyed by that prefix; a lookup probes one bucket per
  distinct prefix length (a handful), each bucket in rank order;
* only the remaining rules (unanchored regexes, patterns starting with a wildcard) are
  scanned, in rank order.

Every candidate set is walked in rank order and abandoned as soon as its next rank cannot
beat the best match found so far, so the winner is exactly the full scan's winner. Cost per
lookup: O(distinct prefix lengths + tests of rules that share the subject's prefixes +
unindexable rules), flat in the number of exact and prefix rules.

The tables are :class:`~pks.route.keytable.KeyTable` s: a dict in pure Python, the compact C
table of pks/route/_keytable.c when the accelerator is built (a million-rule lookup then reads
one cache line per probe instead of four scattered places).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Final, Generic, TypeVar

try:  # the optional accelerator (pks/route/_keytable.c): the same table, compact
    from pks.route._keytable import KeyTable
except ImportError:  # not built (pure Python): a dict
    from pks.route.keytable import KeyTable  # type: ignore[assignment]

__all__ = ["IndexedRule", "RuleIndex", "Test"]

T = TypeVar("T")
Test = Callable[[str], object]
_NO_RANK: Final = 1 << 62


class IndexedRule(Generic[T]):
    """What the index needs to know about one rule.

    ``exact`` is the whole text an exact rule matches (its ``test`` is then unused);
    otherwise ``prefix`` is a literal every match starts with ('' = unknown) and ``test``
    says whether a subject matches — None when starting with ``prefix`` is all it takes
    (``^123`` or ``123*``: no pattern runs for them).
    """

    __slots__ = ("exact", "item", "prefix", "test")

    # a plain class, not a dataclass: mypyc (pks.accel) cannot compile a generic dataclass
    def __init__(
        self, item: T, test: Test | None, exact: str | None = None, prefix: str = ""
    ) -> None:
        self.item = item
        self.test = test
        self.exact = exact
        self.prefix = prefix


class _Entry(Generic[T]):
    """One rule in a bucket: its rank, its test (None: the bucket's key decides) and the next
    rule of the same bucket. One object per rule (compiled, the rank is stored inline), so a
    lookup in a table of a million rules touches few cache lines."""

    __slots__ = ("item", "next", "rank", "test")

    def __init__(self, rank: int, test: Test | None, item: T) -> None:
        self.rank = rank
        self.test = test
        self.item = item
        self.next: _Entry[T] | None = None


_Get = Callable[[str, int], "_Entry[T] | None"]  # KeyTable.get: (subject, length) → entry


def _chain(entries: list[_Entry[T]]) -> _Entry[T]:
    """Link a bucket's entries in rank order; those after an untested one can never win."""
    for entry, following in itertools.pairwise(entries):
        if entry.test is None:
            break
        entry.next = following
    return entries[0]


class RuleIndex(Generic[T]):
    """An ordered rule list (rank = position) answering "first rule that matches"."""

    __slots__ = ("_exact", "_lengths", "_prefix", "_scan")

    def __init__(self, rules: Iterable[IndexedRule[T]]) -> None:
        exact: dict[str, _Entry[T]] = {}
        prefixes: dict[str, list[_Entry[T]]] = {}
        scan: list[_Entry[T]] = []
        for rank, rule in enumerate(rules):
            if rule.exact is not None:
                if rule.exact not in exact:  # the first one wins
                    exact[rule.exact] = _Entry(rank, None, rule.item)
            elif rule.prefix:
                prefixes.setdefault(rule.prefix, []).append(_Entry(rank, rule.test, rule.item))
            elif rule.test is None:
                raise ValueError("a rule that is neither exact nor prefixed needs a test")
            else:
                scan.append(_Entry(rank, rule.test, rule.item))
        # the tables' bound ``get``: compiled code then calls the C method directly
        self._exact: _Get[T] | None = KeyTable(exact).get if exact else None
        self._prefix: _Get[T] = KeyTable({k: _chain(v) for k, v in prefixes.items()}).get
        self._lengths = tuple(sorted({len(key) for key in prefixes}))
        self._scan = tuple(scan)

    def find(self, subject: str) -> T | None:
        """The lowest-ranked rule matching ``subject``, or None."""
        best_rank = _NO_RANK
        best: T | None = None
        exact = self._exact
        if exact is not None:
            hit = exact(subject, -1)
            if hit is not None:
                best_rank, best = hit.rank, hit.item
        if self._lengths:
            size = len(subject)
            prefix = self._prefix
            for length in self._lengths:
                if length > size:
                    break
                entry = prefix(subject, length)
                while entry is not None and entry.rank < best_rank:
                    test = entry.test
                    if test is None or test(subject):
                        best_rank, best = entry.rank, entry.item
                        break
                    entry = entry.next
        for scanned in self._scan:
            if scanned.rank >= best_rank:
                break
            test = scanned.test
            if test is not None and test(subject):
                return scanned.item
        return best
