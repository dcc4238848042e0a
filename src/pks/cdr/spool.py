"""The on-disk spool between the proxy and the sinks: a bounded directory of JSON-lines files,
written by the proxy's process and read by the delivery process.

Every finished record goes through it: the writer thread (:class:`SpoolWriter`, in the
proxy's process) appends each batch to the current segment (``seg-<number>.jsonl``) and
fsyncs it; the delivery process (:class:`SpoolReader`) reads on, for each sink, from that
sink's cursor (``<sink>.cursor``: segment and byte offset) and moves the cursor once the sink
took the batch. A sink that is slow or down only makes its cursor lag: the records wait on
disk, in order, and are delivered when it is back; a proxy restarted meanwhile delivers them
then. The reader deletes a segment once every sink has read past it (never the last one: the
writer may still append to it).

The two sides share nothing but the directory. The writer starts a new segment at every
start and when the current one is ``segment_bytes`` long, so a segment with a newer one beside
it is complete; only whole lines are read (a torn last line left by a crash is skipped).

Bounded by ``max_bytes`` (``PKS_CDR_SPOOL_MAX``): a batch that would go beyond is cut, and the
records left out are counted (``dropped``) and logged — never a call delayed. Delivery is at
least once: a crash between a delivery and its cursor's move delivers the batch again, and
every record carries its ``id`` for the receiver to see it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from pathlib import Path

__all__ = ["STATUS", "Cursor", "SpoolReader", "SpoolWriter", "backlog_bytes"]

log = logging.getLogger("pks.cdr")

_SEGMENT = re.compile(r"seg-(\d{12})\.jsonl")
Cursor = tuple[int, int]  # (segment number, byte offset)
STATUS = "status.json"  # the delivery process's figures of its sinks (pks.cdr.deliver)


def _name(seq: int) -> str:
    return f"seg-{seq:012d}.jsonl"


def _sizes(path: Path) -> dict[int, int]:
    """Segment number → its size, as the directory holds them now."""
    sizes: dict[int, int] = {}
    with os.scandir(path) as entries:
        for entry in entries:
            match = _SEGMENT.fullmatch(entry.name)
            if match:
                with contextlib.suppress(FileNotFoundError):  # deleted by the reader meanwhile
                    sizes[int(match.group(1))] = entry.stat().st_size
    return sizes


def _load_cursor(path: Path, reader: str) -> Cursor:
    try:
        seq, offset = (path / f"{reader}.cursor").read_text().split()
        return int(seq), int(offset)
    except (OSError, ValueError):
        return 0, 0  # a new sink: the whole spool


def _pending(sizes: dict[int, int], cursor: Cursor) -> int:
    seq, offset = cursor
    return sum(size - (offset if s == seq else 0) for s, size in sizes.items() if s >= seq)


def backlog_bytes(path: str | Path, readers: tuple[str, ...]) -> int:
    """Bytes written that the slowest of ``readers`` has not delivered yet."""
    path = Path(path)
    try:
        sizes = _sizes(path)
    except OSError:
        return 0
    return max((_pending(sizes, _load_cursor(path, r)) for r in readers), default=0)


class SpoolWriter:
    """The proxy's side: appends batches of lines to the segments in ``path``, durably."""

    def __init__(self, path: str | Path, max_bytes: int, segment_bytes: int = 4 << 20) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped = 0  # records left out: the spool was full
        self.written = 0  # records written
        sizes = _sizes(self.path)
        self._current = max(sizes, default=0) + 1  # a new segment at every start
        self._size = 0  # of the current segment
        self._file: int | None = None
        # what the directory held at the last look plus what was written since: never less
        # than the truth (the reader only deletes), looked at again only near the bound
        self._used = sum(sizes.values())

    def append(self, lines: list[bytes]) -> int:
        """Write ``lines`` (each ending with a newline) to the spool, durably; returns how many
        were written, the others are dropped (the spool is full)."""
        total = sum(len(line) for line in lines)
        if self._used + total > self.max_bytes:
            self._used = sum(_sizes(self.path).values())
        room = self.max_bytes - self._used
        taken: list[bytes] = []
        size = 0
        for line in lines:
            if size + len(line) > room:
                break
            taken.append(line)
            size += len(line)
        dropped = len(lines) - len(taken)
        if dropped:
            if not self.dropped:
                log.error(
                    "call records: spool %s full (%d bytes), records dropped",
                    self.path,
                    self.max_bytes,
                )
            self.dropped += dropped
        if not taken:
            return 0
        fd = self._segment()
        view = memoryview(b"".join(taken))
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        self._size += size
        self._used += size
        self.written += len(taken)
        return len(taken)

    def _segment(self) -> int:
        """The open segment's descriptor (a new segment beyond ``segment_bytes``)."""
        if self._file is not None and self._size >= self.segment_bytes:
            os.close(self._file)
            self._file = None
            self._current += 1
            self._size = 0
        if self._file is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
            self._file = os.open(self.path / _name(self._current), flags, 0o640)
        return self._file

    def close(self) -> None:
        if self._file is not None:
            os.close(self._file)
            self._file = None


class SpoolReader:
    """The delivery process's side: ``readers`` are the sinks' names, each with its cursor.

    Thread-safe: one thread per sink reads and commits; :meth:`notify` (the writer said it
    wrote) wakes the ones waiting in :meth:`wait`."""

    def __init__(self, path: str | Path, readers: tuple[str, ...]) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.readers = readers
        self._lock = threading.Condition()
        self._cursors = {name: _load_cursor(self.path, name) for name in readers}
        self._collect()

    def read(self, reader: str, most: int) -> tuple[list[bytes], Cursor]:
        """Up to ``most`` records after ``reader``'s cursor, and the cursor after them (pass
        it to :meth:`commit` once they are delivered). Empty: nothing new."""
        with self._lock:
            seq, offset = start_at = self._cursors[reader]
        segments = sorted(s for s in _sizes(self.path) if s >= seq)
        lines: list[bytes] = []
        for segment in segments:
            if segment != seq:
                seq, offset = segment, 0
            offset = self._read_lines(segment, offset, most, lines)
            if len(lines) >= most or segment == segments[-1]:
                break
            # an older segment read to its end (a torn last line of a crash is left behind)
        if not lines and (seq, offset) != start_at:
            self.commit(reader, (seq, offset))  # only finished segments were passed
        return lines, (seq, offset)

    def _read_lines(self, segment: int, offset: int, most: int, lines: list[bytes]) -> int:
        """Append the whole lines of ``segment`` after ``offset`` to ``lines`` until ``most``;
        the offset after the last one taken."""
        chunk_size = max(64 << 10, (most - len(lines)) * 1024)
        try:
            with open(self.path / _name(segment), "rb") as file:
                while len(lines) < most:
                    file.seek(offset)
                    chunk = file.read(chunk_size)
                    start = 0
                    while len(lines) < most:
                        newline = chunk.find(b"\n", start)
                        if newline < 0:
                            break
                        lines.append(chunk[start : newline + 1])
                        start = newline + 1
                    offset += start
                    if len(chunk) < chunk_size:
                        break  # the end of what is written
                    if not start:
                        chunk_size *= 2  # a line longer than the chunk
        except FileNotFoundError:
            pass
        return offset

    def commit(self, reader: str, cursor: Cursor) -> None:
        """``reader`` delivered everything before ``cursor``: remember it, drop what every
        reader is past."""
        with self._lock:
            self._cursors[reader] = cursor
        tmp = self.path / f".{reader}.cursor.tmp"
        tmp.write_text(f"{cursor[0]} {cursor[1]}\n")
        os.replace(tmp, self.path / f"{reader}.cursor")
        self._collect()

    def notify(self) -> None:
        """Something was written: wake the readers waiting for it."""
        with self._lock:
            self._lock.notify_all()

    def wait(self, reader: str, timeout: float) -> None:
        """Sleep until :meth:`notify`, or ``timeout`` (when nothing is pending)."""
        with self._lock:
            if not self.pending(reader):
                self._lock.wait(timeout)

    def pending(self, reader: str) -> bool:
        """Is anything written that ``reader`` has not delivered?"""
        with self._lock:
            cursor = self._cursors[reader]
        return _pending(_sizes(self.path), cursor) > 0

    def _collect(self) -> None:
        """Delete the segments every reader has read past (never the last: the writer's)."""
        sizes = _sizes(self.path)
        last = max(sizes, default=0)
        with self._lock:
            if not self._cursors:
                return
            cursors = list(self._cursors.values())
        for s, size in sizes.items():
            if s != last and all(seq > s or (seq == s and off >= size) for seq, off in cursors):
                with contextlib.suppress(FileNotFoundError):
                    (self.path / _name(s)).unlink()
