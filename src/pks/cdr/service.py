"""Call records, the proxy's side of the I/O: the writer thread and the delivery process.

::

    proxy's process                                          delivery process
    core (event loop)          writer thread                 (pks.cdr.deliver): a thread per sink
    packed JSON arrays ──────► Spool ───────────────────────► FileSink / WebhookSink / DbSink
    (wall times, ids) in       (fsynced, bounded)            (batches; exponential backoff
    Recorder.queue (bounded)                                  while a sink fails)

The event loop packs each finished record into its spool line — a JSON array of its values
(:class:`pks.cdr.record.Packer`: no formatting) with its id — and appends it to the recorder's
bounded queue. The writer thread empties the queue every ``interval`` seconds into the spool
(one write and one fsync per batch: I/O only, so it seldom wants the interpreter lock), then
wakes the delivery process through its pipe. Everything else — the records' JSON objects,
HTTP, database transactions — happens in that process, so the sinks cost the proxy's GIL
nothing. What the queue or the spool could not take is counted (``stats()``:
``cdr_dropped_queue``, ``cdr_dropped_spool``) and logged.

The delivery process is restarted when it dies (after 1 s, doubled up to 30 s while it keeps
dying); the records wait in the spool meanwhile. At stop the writer writes what is queued and
the process gets ``grace`` seconds to deliver it; what it did not take stays in the spool for
the next start.

With worker processes each worker runs its own service: its own queue, its own spool
directory (``PKS_CDR_SPOOL``/w<index>), its own delivery process; records carry the worker's
index.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pks.cdr.record import Packer, PeerOf, Recorder
from pks.cdr.spool import STATUS, SpoolWriter, backlog_bytes

__all__ = ["CdrService", "SinkConfig"]

log = logging.getLogger("pks.cdr")

RESTART_FIRST, RESTART_MAX, STABLE_AFTER = 1.0, 30.0, 30.0  # the delivery process's restarts

_encode = json.JSONEncoder(separators=(",", ":")).encode


@dataclass(frozen=True)
class SinkConfig:
    """What the delivery process is told (the first line of its pipe)."""

    sinks: tuple[str, ...]
    file: str | None = None
    webhook_url: str | None = None
    webhook_token: str | None = None
    webhook_timeout: float = 10.0
    db_url: str | None = None
    batch: int = 500
    backoff: float = 1.0
    backoff_max: float = 60.0
    linger: float = 1.0  # between two deliveries of a sink while batches are not full


def _id_prefix() -> str:
    """A random UUID (version 4) but its last 12 hex digits, which number this process's
    records: one system call per process, ids fixed in the spool (the same at every
    delivery)."""
    h = os.urandom(10).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-"


class CdrService:
    """The writer thread and the delivery process of one proxy process (see the module
    docstring)."""

    def __init__(
        self,
        recorder: Recorder,
        sinks: SinkConfig,
        spool_path: str | Path,
        spool_max: int,
        *,
        wall_offset: Callable[[], float],
        worker: int | None = None,
        peer_of: PeerOf | None = None,
        interval: float = 0.2,
        grace: float = 5.0,
    ) -> None:
        self.recorder = recorder
        self.sinks = sinks
        self.worker = worker
        self.interval = interval
        self.grace = grace
        self.spool = SpoolWriter(spool_path, spool_max)
        self._child: subprocess.Popen[bytes] | None = None
        self._started = 0.0
        self._restart_at: float | None = None
        self._backoff = RESTART_FIRST
        self._carried = {name: (0, 0) for name in sinks.sinks}  # earlier processes' figures
        self._stop_writer = threading.Event()
        self._writer_done = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name="pks-cdr-writer", daemon=True)
        self._dropped_logged = 0
        self.packer = Packer(_id_prefix(), wall_offset, worker, peer_of)
        recorder.packer = self.packer

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):  # a previous run's figures
            (self.spool.path / STATUS).unlink()
        self._spawn()
        self._writer.start()
        where = ", ".join(self.sinks.sinks)
        log.info("call records: to %s, spooled in %s", where or "nothing", self.spool.path)

    # ---- the delivery process -----------------------------------------------------------
    def _spawn(self) -> None:
        config: dict[str, Any] = {
            **asdict(self.sinks),
            "spool": str(self.spool.path),
            "grace": self.grace,
            "log_level": logging.getLevelName(logging.getLogger("pks").getEffectiveLevel()),
            "tag": "" if self.worker is None else f"[w{self.worker}]",
        }
        child = subprocess.Popen(
            [sys.executable, "-m", "pks.cdr.deliver"], stdin=subprocess.PIPE, close_fds=True
        )
        assert child.stdin is not None
        child.stdin.write(_encode(config).encode() + b"\n")
        child.stdin.flush()
        os.set_blocking(child.stdin.fileno(), False)
        self._child = child
        self._started = time.monotonic()
        self._restart_at = None

    def _wake(self) -> None:
        """Tell the delivery process records were spooled (never waiting for it)."""
        child = self._child
        if child is not None and child.stdin is not None:
            with contextlib.suppress(OSError):  # its pipe full (it will read), or it died
                os.write(child.stdin.fileno(), b".")

    def _watch(self) -> None:
        """Restart the delivery process when it died (with backoff)."""
        now = time.monotonic()
        child = self._child
        if child is not None and child.poll() is not None:
            for sink in self._sink_figures():  # what it delivered counts on
                before = self._carried.get(sink["sink"], (0, 0))
                self._carried[sink["sink"]] = (
                    before[0] + int(sink["delivered"]),
                    before[1] + int(sink["failures"]),
                )
            with contextlib.suppress(FileNotFoundError):
                (self.spool.path / STATUS).unlink()
            if now - self._started >= STABLE_AFTER:
                self._backoff = RESTART_FIRST
            log.error(
                "call records: the delivery process exited with status %d; restarting it in"
                " %.0f s (records wait in the spool)",
                child.returncode,
                self._backoff,
            )
            self._restart_at = now + self._backoff
            self._backoff = min(RESTART_MAX, self._backoff * 2)
            if child.stdin is not None:
                child.stdin.close()
            self._child = None
        if self._child is None and self._restart_at is not None and now >= self._restart_at:
            self._spawn()

    # ---- the writer thread ------------------------------------------------------------------
    def _write_loop(self) -> None:
        while True:
            stopping = self._stop_writer.wait(self.interval)
            try:
                if self.write_pending():
                    self._wake()
            except Exception:  # a full disk, a bug: said, and tried again at the next turn
                log.exception("call records: cannot write to the spool %s", self.spool.path)
            if stopping:
                self._writer_done.set()
                return
            try:
                self._watch()
            except OSError as exc:
                log.error("call records: cannot start the delivery process: %s", exc)
                self._restart_at = time.monotonic() + self._backoff

    def write_pending(self) -> int:
        """Move the finished records from the queue to the spool; returns how many."""
        queue = self.recorder.queue
        moved = 0
        while queue:
            lines: list[bytes] = []
            while queue and len(lines) < 1000:
                item = queue.popleft()
                lines.append(item if isinstance(item, bytes) else self.packer(item))
            moved += self.spool.append(lines)
        dropped = self.recorder.dropped
        if dropped > self._dropped_logged:
            log.error(
                "call records: %d dropped, the queue was full (%d)",
                dropped - self._dropped_logged,
                self.recorder.capacity,
            )
            self._dropped_logged = dropped
        return moved

    # ---- stopping -----------------------------------------------------------------------------
    def close(self) -> None:
        """Write what is queued, give the delivery process ``grace`` seconds to deliver it;
        what it did not take stays in the spool for the next start. Blocking (call it in a
        thread)."""
        self._stop_writer.set()
        self._writer_done.wait(self.grace + 5)
        self.spool.close()
        child = self._child
        if child is None:
            return
        if child.stdin is not None:
            with contextlib.suppress(OSError):
                child.stdin.close()  # the end of the pipe: deliver what is left, then exit
        try:
            child.wait(self.grace + 5)
        except subprocess.TimeoutExpired:
            log.warning("call records: the delivery process did not stop; killed")
            child.kill()
            child.wait(5)

    # ---- figures ------------------------------------------------------------------------------
    def _sink_figures(self) -> list[dict[str, Any]]:
        """The delivery process's figures (``status.json``), none before it wrote them."""
        try:
            sinks = json.loads((self.spool.path / STATUS).read_text())["sinks"]
        except (OSError, ValueError, KeyError, TypeError):
            return []
        return [s for s in sinks if isinstance(s, dict) and s.get("sink") in self._carried]

    def stats(self) -> dict[str, int]:
        """Counters summed over the workers (``/status``, ``/metrics``)."""
        figures = {
            "cdr_records": self.recorder.made,
            "cdr_dropped_queue": self.recorder.dropped,
            "cdr_dropped_spool": self.spool.dropped,
            "cdr_spooled": self.spool.written,
            "cdr_spool_bytes": backlog_bytes(self.spool.path, self.sinks.sinks),
        }
        live = {s["sink"]: s for s in self._sink_figures()}
        for name, (delivered, failures) in self._carried.items():
            now = live.get(name, {})
            figures[f"cdr_delivered_{name}"] = delivered + int(now.get("delivered", 0))
            figures[f"cdr_failures_{name}"] = failures + int(now.get("failures", 0))
        return figures
