"""Step ⑤b helper: find the first matching rule of an ordered list without testing them all.

Kamailio tests the rules of one ``match_len`` group in ``(pr, id)`` order and stops at the
first match. :class:`RuleIndex` returns the same rule — the lowest-ranked rule whose test
passes — while testing only rules that can match:

* exact rules (``match_op`` 0) sit in a dict keyed by their whole text;
* rules whose every match starts with a known literal (anchored regex ``^123…``, shell
  pattern ``123*``) sit in buckets keyed by that prefix; a lookup probes one bucket per
  distinct prefix length (a handful), each bucket in rank order;
* only the remaining rules (unanchored regexes, patterns starting with a wildcard) are
  scanned, in rank order.

Every candidate set is walked in rank order and abandoned as soon as its next rank cannot
beat the best match found so far, so the winner is exactly the full scan's winner. Cost per
lookup: O(distinct prefix lengths + tests of rules that share the subject's prefixes +
unindexable rules), flat in the number of exact and prefix rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["IndexedRule", "RuleIndex", "Test"]

T = TypeVar("T")
Test = Callable[[str], object]
_NO_RANK = 1 << 62


@dataclass(frozen=True, slots=True)
class IndexedRule(Generic[T]):
    """What the index needs to know about one rule.

    ``exact`` is the whole text an exact rule matches (its ``test`` is then unused);
    otherwise ``prefix`` is a literal every match starts with ('' = unknown) and ``test``
    says whether a subject matches.
    """

    item: T
    test: Test | None
    exact: str | None = None
    prefix: str = ""


_Entry = tuple[int, Test, T]


class RuleIndex(Generic[T]):
    """An ordered rule list (rank = position) answering "first rule that matches"."""

    __slots__ = ("_exact", "_lengths", "_prefixes", "_scan")

    def __init__(self, rules: Iterable[IndexedRule[T]]) -> None:
        exact: dict[str, tuple[int, T]] = {}
        prefixes: dict[str, list[_Entry[T]]] = {}
        scan: list[_Entry[T]] = []
        for rank, rule in enumerate(rules):
            if rule.exact is not None:
                exact.setdefault(rule.exact, (rank, rule.item))  # the first one wins
            elif rule.test is None:
                raise ValueError("a rule that is not exact needs a test")
            elif rule.prefix:
                prefixes.setdefault(rule.prefix, []).append((rank, rule.test, rule.item))
            else:
                scan.append((rank, rule.test, rule.item))
        self._exact = exact
        self._prefixes = {key: tuple(entries) for key, entries in prefixes.items()}
        self._lengths = tuple(sorted({len(key) for key in prefixes}))
        self._scan = tuple(scan)

    def find(self, subject: str) -> T | None:
        """The lowest-ranked rule matching ``subject``, or None."""
        best_rank = _NO_RANK
        best: T | None = None
        hit = self._exact.get(subject)
        if hit is not None:
            best_rank, best = hit
        if self._lengths:
            size = len(subject)
            prefixes = self._prefixes
            for length in self._lengths:
                if length > size:
                    break
                bucket = prefixes.get(subject[:length])
                if bucket is None:
                    continue
                for rank, test, item in bucket:
                    if rank >= best_rank:
                        break
                    if test(subject):
                        best_rank, best = rank, item
                        break
        for rank, test, item in self._scan:
            if rank >= best_rank:
                break
            if test(subject):
                return item
        return best
