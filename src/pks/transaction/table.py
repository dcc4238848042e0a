"""Step ④ transaction — the live transactions by key, and one deadline heap for all of them.

Role: the proxy core matches each message to a transaction here (RFC 3261 §17.1.3 for
responses, §17.2.3 for requests), and asks the table which transactions have a timer due so that
its I/O edge can arm a single wake-up (``next_deadline``) instead of one timer per transaction.

Keys are built from values the parser already has (branch, sent-by, method), so this module
does not depend on the message model:

* ``server_key(branch, sent_by, method)``: §17.2.3. An ACK matches the INVITE it acknowledges
  (its method is normalised to INVITE); a CANCEL is a transaction of its own.
* ``client_key(branch, method)``: §17.1.3, the branch we put in our Via plus the CSeq method
  of the response; CANCEL is distinct, ACK normalised to INVITE.

Branch and sent-by are tokens/host names, compared case-insensitively (§7.3.1), so both are
lowercased; methods are case-sensitive (§7.1). RFC 2543 matching (no magic cookie) is not done
here.

Deadline heap invariants: ``schedule`` costs O(log n); re-scheduling a key leaves its old heap
entry behind, and an entry counts only while it equals the key's current deadline (lazy
invalidation). The heap is rebuilt from the live deadlines once stale entries outnumber them,
so it holds O(live keys) entries and every operation stays amortised O(log n).
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeAlias, TypeVar

__all__ = ["ClientKey", "ServerKey", "TransactionTable", "client_key", "server_key"]

K = TypeVar("K")
T = TypeVar("T")

ServerKey: TypeAlias = tuple[str, str, str]
ClientKey: TypeAlias = tuple[str, str]

# Rebuild the heap when it holds more than twice the live deadlines plus this slack; the slack
# keeps a small table from being rebuilt on every schedule.
_COMPACT_SLACK = 64


def server_key(branch: str, sent_by: str, method: str) -> ServerKey:
    """The key of the server transaction a request belongs to (RFC 3261 §17.2.3)."""
    return (branch.lower(), sent_by.lower(), "INVITE" if method == "ACK" else method)


def client_key(branch: str, method: str) -> ClientKey:
    """The key of the client transaction a response belongs to (RFC 3261 §17.1.3)."""
    return (branch.lower(), "INVITE" if method == "ACK" else method)


class TransactionTable(Generic[K, T]):
    """Transactions of type ``T`` by key ``K``, with their next deadlines in one heap."""

    __slots__ = ("_deadlines", "_heap", "_seq", "_txns")

    def __init__(self) -> None:
        self._txns: dict[K, T] = {}
        self._deadlines: dict[K, float] = {}
        # (deadline, insertion number, key): the number breaks ties, so keys are never compared.
        self._heap: list[tuple[float, int, K]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._txns)

    def __contains__(self, key: K) -> bool:
        return key in self._txns

    def add(self, key: K, txn: T) -> None:
        """Register a new transaction; ValueError if one already holds ``key``."""
        if key in self._txns:
            raise ValueError(f"a transaction already exists for {key!r}")
        self._txns[key] = txn

    def get(self, key: K) -> T | None:
        return self._txns.get(key)

    def remove(self, key: K) -> T | None:
        """Forget a transaction and its deadline; returns it, or None if it was not there."""
        self._deadlines.pop(key, None)
        return self._txns.pop(key, None)

    def schedule(self, key: K, deadline: float | None) -> None:
        """Set (or, with None, clear) the instant at which ``key`` must get ``on_timer``.

        Meant to be called after every call into a transaction with its ``next_deadline()``;
        an unchanged deadline costs one dict lookup.
        """
        deadlines = self._deadlines
        if deadline is None:
            deadlines.pop(key, None)
            return
        if deadlines.get(key) == deadline:
            return
        deadlines[key] = deadline
        heap = self._heap
        heapq.heappush(heap, (deadline, next(self._seq), key))
        if len(heap) > 2 * len(deadlines) + _COMPACT_SLACK:
            self._compact()

    def due(self, now: float) -> list[K]:
        """Keys whose deadline is at or before ``now``, earliest first, each once.

        A returned key is no longer scheduled: after calling its ``on_timer``, schedule it
        again with its new ``next_deadline()``.
        """
        heap = self._heap
        deadlines = self._deadlines
        keys: list[K] = []
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if deadlines.get(key) == deadline:
                del deadlines[key]
                keys.append(key)
        return keys

    def next_deadline(self) -> float | None:
        """The earliest scheduled deadline, or None when nothing is scheduled."""
        heap = self._heap
        deadlines = self._deadlines
        while heap:
            deadline, _, key = heap[0]
            if deadlines.get(key) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def _compact(self) -> None:
        seq = self._seq
        self._heap = [(deadline, next(seq), key) for key, deadline in self._deadlines.items()]
        heapq.heapify(self._heap)
