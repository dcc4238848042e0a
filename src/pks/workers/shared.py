"""Instance-wide state of the worker processes, in one shared memory file.

The supervisor creates the file (``/dev/shm/pks-…``, mode 0600) before it starts the workers;
each worker maps it. It holds:

* a header: the worker count, the handoff token, and per worker its pid, handoff port,
  readiness and two change generations (gateway flags, gateway loads);
* a table of 64-bit values in *slots*, found by a stable key (a tuple of str/int hashed with
  BLAKE2b into a 16-byte digest, open addressing). A slot never moves and is never freed, so
  each process caches key → index and reads or writes the value directly afterwards.

Writes are of two kinds. *Owned* values (a worker's own count of calls per peer or per
gateway, its generations) have a single writer, the worker itself: no lock, readers add the
workers' values up. *Common* values (round-robin counters, weighted credits, gateway flags)
are written under a lock when the write depends on the read (round-robin). Locks are POSIX
record locks (``fcntl.lockf``) on bytes of the file: the kernel releases them when their
holder dies, so a killed worker never blocks the others. They are per process: the store is
used from the event loop thread only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import mmap
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator, MutableMapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from pks.config import MAX_WORKERS

if TYPE_CHECKING:
    from pks.health.state import DestState
    from pks.route.dispatch import DispatcherSet, DispatcherTable
    from pks.route.snapshot import Snapshot

__all__ = ["MAX_WORKERS", "GatewayShare", "PeerShare", "SharedStore", "share_selection"]

log = logging.getLogger("pks.workers")

SLOTS = 1 << 17
MAGIC = 0x706B735F73686D31  # "pks_shm1"
TOKEN_BYTES = 16

# int64 word offsets of the header
_W_MAGIC, _W_WORKERS, _W_SLOTS = 0, 1, 2
_W_TOKEN = 4  # two words: the handoff token
_PID = 8
_PORT = _PID + MAX_WORKERS
_READY = _PORT + MAX_WORKERS
_GEN_FLAGS = _READY + MAX_WORKERS
_GEN_LOAD = _GEN_FLAGS + MAX_WORKERS
_HEADER_WORDS = _GEN_LOAD + MAX_WORKERS
_VALUES = _HEADER_WORDS  # word offset of the slot values
_KEYS = (_VALUES + SLOTS) * 8  # byte offset of the slot keys
SIZE = _KEYS + SLOTS * 16
_EMPTY = bytes(16)

# lock bytes (beyond the end of the data: record locks need no data there)
_ALLOC_LOCK = SIZE
_SELECT_LOCK = SIZE + 1


def _digest(key: tuple[object, ...]) -> bytes:
    return hashlib.blake2b(repr(key).encode(), digest_size=16).digest()


class FileLock:
    """An exclusive lock on one byte of the store file (released by the kernel on death)."""

    __slots__ = ("_fd", "_offset")

    def __init__(self, fd: int, offset: int) -> None:
        self._fd, self._offset = fd, offset

    def __enter__(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_EX, 1, self._offset)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._offset)


class SharedStore:
    """One process's view of the shared file: header fields and slots."""

    def __init__(self, path: str | Path, index: int) -> None:
        self.path = str(path)
        self.index = index
        self._fd = os.open(self.path, os.O_RDWR)
        self._map = mmap.mmap(self._fd, SIZE)
        self.words = memoryview(self._map).cast("q")
        self._bytes = memoryview(self._map)
        if self.words[_W_MAGIC] != MAGIC:
            raise ValueError(f"{self.path} is not a pks shared store")
        self.workers = int(self.words[_W_WORKERS])
        if not 0 <= index < self.workers:
            raise ValueError(f"worker index {index} out of 0..{self.workers - 1}")
        self.token = bytes(self._bytes[_W_TOKEN * 8 : _W_TOKEN * 8 + TOKEN_BYTES])
        self.alloc_lock = FileLock(self._fd, _ALLOC_LOCK)
        self.select_lock = FileLock(self._fd, _SELECT_LOCK)
        self._cache: dict[bytes, int] = {}
        self._owned: set[int] = set()
        self._full_logged = False

    # -- creation (supervisor) ----------------------------------------------------------
    @staticmethod
    def create(workers: int, directory: str | None = None) -> str:
        """Create a zeroed store file for ``workers`` workers; return its path."""
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 1..{MAX_WORKERS}")
        where = directory or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
        fd, path = tempfile.mkstemp(prefix=f"pks-{os.getpid()}-", dir=where)
        try:
            os.ftruncate(fd, SIZE)
            with mmap.mmap(fd, SIZE) as mapped:
                words = memoryview(mapped).cast("q")
                words[_W_WORKERS] = workers
                words[_W_SLOTS] = SLOTS
                mapped[_W_TOKEN * 8 : _W_TOKEN * 8 + TOKEN_BYTES] = secrets.token_bytes(TOKEN_BYTES)
                words[_W_MAGIC] = MAGIC
                words.release()
        finally:
            os.close(fd)
        return path

    def close(self) -> None:
        with contextlib.suppress(BufferError):
            self.words.release()
            self._bytes.release()
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    # -- per-worker header fields -------------------------------------------------------
    def set_worker(
        self,
        index: int,
        *,
        pid: int | None = None,
        port: int | None = None,
        ready: bool | None = None,
    ) -> None:
        if pid is not None:
            self.words[_PID + index] = pid
        if port is not None:
            self.words[_PORT + index] = port
        if ready is not None:
            self.words[_READY + index] = int(ready)

    def pid(self, index: int) -> int:
        return int(self.words[_PID + index])

    def port(self, index: int) -> int:
        return int(self.words[_PORT + index])

    def ready(self, index: int) -> bool:
        return bool(self.words[_READY + index])

    def clear_worker(self, index: int) -> None:
        """A worker is gone: no handoff to it until its successor publishes its port."""
        self.set_worker(index, pid=0, port=0, ready=False)

    def generations(self) -> tuple[int, int]:
        """Sums of every worker's (flags, loads) generations: they change on any change."""
        n = self.workers
        words = self.words
        return (sum(words[_GEN_FLAGS : _GEN_FLAGS + n]), sum(words[_GEN_LOAD : _GEN_LOAD + n]))

    def bump_flags(self) -> None:
        self.words[_GEN_FLAGS + self.index] += 1

    def bump_load(self) -> None:
        self.words[_GEN_LOAD + self.index] += 1

    # -- slots --------------------------------------------------------------------------
    def slot(self, key: tuple[object, ...], initial: int = 0) -> int:
        """The slot of ``key`` (its value word offset), created holding ``initial``."""
        digest = _digest(key)
        found = self._cache.get(digest)
        if found is not None:
            return found
        with self.alloc_lock:
            found = self._find(digest, initial)
        self._cache[digest] = found
        return found

    def own_slot(self, key: tuple[object, ...]) -> int:
        """This worker's slot of ``key`` (the key gets our index), zeroed the first time this
        process asks for it: a restarted worker does not inherit its predecessor's counts."""
        found = self.slot((*key, self.index))
        if found not in self._owned:
            self._owned.add(found)
            self.words[found] = 0
        return found

    def all_slots(self, key: tuple[object, ...]) -> tuple[int, ...]:
        """Every worker's slot of ``key`` (owned values), in worker order."""
        return tuple(self.slot((*key, w)) for w in range(self.workers))

    def _find(self, digest: bytes, initial: int) -> int:
        raw = self._bytes
        start = int.from_bytes(digest[:8], "little") % (SLOTS - 1) + 1  # slot 0: overflow
        for step in range(SLOTS - 1):
            i = (start - 1 + step) % (SLOTS - 1) + 1
            at = _KEYS + i * 16
            current = raw[at : at + 16]
            if current == digest:
                return _VALUES + i
            if current == _EMPTY:
                self.words[_VALUES + i] = initial
                raw[at : at + 16] = digest
                return _VALUES + i
        if not self._full_logged:
            self._full_logged = True
            log.error("shared store full (%d slots): instance-wide counts are now wrong", SLOTS)
        return _VALUES

    def get(self, word: int) -> int:
        return int(self.words[word])

    def put(self, word: int, value: int) -> None:
        self.words[word] = value

    def total(self, words: Iterable[int]) -> int:
        values = self.words
        return sum(values[w] for w in words)


# -- dispatcher selection state ----------------------------------------------------------------


def _set_key(dset: DispatcherSet) -> tuple[object, ...]:
    """A set's identity: its id, algorithm and destination rows (a changed set restarts)."""
    rows = tuple(
        (d.uri, d.target.socket_name, d.flags, d.priority, d.attrs) for d in dset.destinations
    )
    return (dset.setid, dset.algorithm, _digest(rows).hex())


class SharedLast(MutableMapping[int, int]):
    """Round-robin ``last`` counters, one shared slot per set."""

    def __init__(self, store: SharedStore, table: DispatcherTable) -> None:
        self._store, self._table = store, table
        self._words: dict[int, int] = {}

    def _word(self, setid: int) -> int | None:
        word = self._words.get(setid)
        if word is None:
            dset = self._table.sets.get(setid)
            if dset is None:
                return None
            word = self._words[setid] = self._store.slot(("rr", *_set_key(dset)))
        return word

    def __getitem__(self, setid: int) -> int:
        word = self._word(setid)
        if word is None:
            raise KeyError(setid)
        return self._store.get(word)

    def __setitem__(self, setid: int, value: int) -> None:
        word = self._word(setid)
        if word is not None:
            self._store.put(word, value)

    def __delitem__(self, setid: int) -> None:
        self[setid] = 0

    def __iter__(self) -> Iterator[int]:
        return iter(self._table.sets)

    def __len__(self) -> int:
        return len(self._table.sets)


class SharedVector:
    """A fixed-length list of shared integers (one set's weighted credits)."""

    __slots__ = ("_store", "_words")

    def __init__(self, store: SharedStore, words: tuple[int, ...]) -> None:
        self._store, self._words = store, words

    def __len__(self) -> int:
        return len(self._words)

    def __getitem__(self, index: int) -> int:
        return self._store.get(self._words[index])

    def __setitem__(self, index: int, value: int) -> None:
        self._store.put(self._words[index], value)


class SharedCredits(MutableMapping[int, Any]):
    """Weighted round-robin credits per set, in shared slots."""

    def __init__(self, store: SharedStore, table: DispatcherTable) -> None:
        self._store, self._table = store, table
        self._vectors: dict[int, SharedVector] = {}

    def __getitem__(self, setid: int) -> SharedVector:
        vector = self._vectors.get(setid)
        if vector is None:
            dset = self._table.sets.get(setid)
            if dset is None:
                raise KeyError(setid)
            key = _set_key(dset)
            words = tuple(
                self._store.slot(("credit", *key, i)) for i in range(len(dset.destinations))
            )
            vector = self._vectors[setid] = SharedVector(self._store, words)
        return vector

    def setdefault(self, setid: int, default: Any = None) -> SharedVector:
        return self[setid]

    def __setitem__(self, setid: int, value: Any) -> None:
        vector = self[setid]
        for i, item in enumerate(value):
            vector[i] = item

    def __delitem__(self, setid: int) -> None:
        self[setid] = [0] * len(self[setid])

    def __iter__(self) -> Iterator[int]:
        return iter(self._table.sets)

    def __len__(self) -> int:
        return len(self._table.sets)


def share_selection(snapshot: Snapshot, store: SharedStore) -> None:
    """Make ``snapshot``'s round-robin and weighted state instance-wide (selections under the
    store's selection lock). Slots are found lazily, at a set's first selection."""
    rr = snapshot.rr
    rr.last = SharedLast(store, snapshot.dispatcher)
    rr.credit = SharedCredits(store, snapshot.dispatcher)
    rr.guard = store.select_lock


# -- gateway states and loads ----------------------------------------------------------------


class GatewayShare:
    """:class:`pks.health.state.GatewayStates`' instance-wide backing (``StateShare``).

    Flags live in one common slot per destination *and row signature* (a changed row starts
    from its own flags, as in one process; an unchanged one keeps the live state, also in a
    restarted worker). Loads are owned slots, one per worker; a destination's ``load`` is
    their sum. A worker that changes flags, or the load of a ``maxload=`` destination, bumps
    its generation; the others re-read when the generations differ from the ones they saw.
    """

    def __init__(self, store: SharedStore) -> None:
        self.store = store
        self._flags: dict[tuple[object, ...], int] = {}
        self._own: dict[tuple[object, ...], int] = {}
        self._loads: dict[tuple[object, ...], tuple[int, ...]] = {}
        self._limited: list[DestState] = []
        self._seen = store.generations()

    def attach(self, states: Iterable[DestState]) -> None:
        """Bind a new snapshot's destination states to their slots (shared state wins)."""
        store = self.store
        flags: dict[tuple[object, ...], int] = {}
        own: dict[tuple[object, ...], int] = {}
        loads: dict[tuple[object, ...], tuple[int, ...]] = {}
        limited = []
        for state in states:
            key = state.key
            word = store.slot(("gw-flags", *key, *state.signature), state.flags)
            state.flags = store.get(word)
            flags[key] = word
            own[key] = self._own.get(key) or store.own_slot(("gw-load", *key))
            loads[key] = store.all_slots(("gw-load", *key))
            state.load = store.total(loads[key])
            if state.maxload:
                limited.append(state)
        self._flags, self._own, self._loads, self._limited = flags, own, loads, limited
        self._seen = store.generations()

    def stale(self) -> int:
        """0: nothing changed elsewhere; 1: loads of limited gateways; 2: flags."""
        now = self.store.generations()
        seen = self._seen
        if now == seen:
            return 0
        return 2 if now[0] != seen[0] else 1

    def pull(self, states: Iterable[DestState], what: int = 2) -> None:
        """Re-read flags (``what`` 2) and loads of every destination, or (1) only the loads
        of destinations with a ``maxload``."""
        store = self.store
        self._seen = store.generations()
        if what < 2:
            for state in self._limited:
                state.load = store.total(self._loads.get(state.key, ()))
            return
        for state in states:
            key = state.key
            word = self._flags.get(key)
            if word is not None:
                state.flags = store.get(word)
                state.load = store.total(self._loads[key])

    def refresh_load(self, state: DestState) -> None:
        state.load = self.store.total(self._loads.get(state.key, ()))

    def publish(self, state: DestState) -> None:
        """``state``'s flags changed here: write them for the other workers."""
        word = self._flags.get(state.key)
        if word is not None:
            self.store.put(word, state.flags)
            self.store.bump_flags()
            self._seen = (self._seen[0] + 1, self._seen[1])

    def add_load(self, state: DestState, delta: int) -> None:
        store = self.store
        word = self._own.get(state.key)
        if word is None:
            return
        store.put(word, max(0, store.get(word) + delta))
        state.load = store.total(self._loads[state.key])
        if state.maxload:
            store.bump_load()
            self._seen = (self._seen[0], self._seen[1] + 1)


class RateShare:
    """Calls per second per key (``pks_peer.max_cps``, ``maxcps=``) across worker processes
    (:class:`pks.route.fraud.RateShare`): each worker keeps its count of the current second in
    its own word, stamped with that second; the others' words of the same second are added
    to its own count before a call is let through. Without it each worker would count alone,
    and a source's calls, spread over the workers by Call-ID, would get workers × the limit."""

    _BITS = 20  # the count's bits; the second is above them

    def __init__(self, store: SharedStore, kind: str) -> None:
        self.store = store
        self.kind = kind
        self._own: dict[str, int] = {}
        self._others: dict[str, tuple[int, ...]] = {}

    def others(self, key: str, second: int) -> int:
        words = self._others.get(key)
        if words is None:
            own = self._own_word(key)
            slots = self.store.all_slots((self.kind, key))
            words = self._others[key] = tuple(w for w in slots if w != own)
        total = 0
        mask = (1 << self._BITS) - 1
        for word in words:
            value = self.store.get(word)
            if value >> self._BITS == second:
                total += value & mask
        return total

    def publish(self, key: str, second: int, count: int) -> None:
        value = (second << self._BITS) | min(count, (1 << self._BITS) - 1)
        self.store.put(self._own_word(key), value)

    def _own_word(self, key: str) -> int:
        word = self._own.get(key)
        if word is None:
            word = self._own[key] = self.store.own_slot((self.kind, key))
        return word


class PeerShare:
    """:class:`pks.forward.calls.CallTable`'s instance-wide per-peer counts (``CallShare``):
    each worker owns its count per peer tag; the limit is checked against their sum."""

    def __init__(self, store: SharedStore, on_missed_bye: Any = None, journal: Any = None) -> None:
        self.store = store
        self._own: dict[str, int] = {}
        self._all: dict[str, tuple[int, ...]] = {}
        self.on_missed_bye = on_missed_bye
        self.journal = journal  # pks.workers.journal.Journal: answered calls, for a successor

    def count(self, peer: str) -> int:
        words = self._all.get(peer)
        if words is None:
            words = self._all[peer] = self.store.all_slots(("peer", peer))
        return self.store.total(words)

    def set_own(self, peer: str, count: int) -> None:
        word = self._own.get(peer)
        if word is None:
            word = self._own[peer] = self.store.own_slot(("peer", peer))
        self.store.put(word, count)

    def missed_bye(
        self, call_id: str, from_tag: str | None, to_tag: str | None, source: str | None
    ) -> None:
        if self.on_missed_bye is not None:
            self.on_missed_bye(call_id, from_tag, to_tag, source)

    def call_up(self, call: Any) -> None:
        if self.journal is not None:
            self.journal.call_up(call)

    def call_down(self, call: Any) -> None:
        if self.journal is not None:
            self.journal.call_down(call)
