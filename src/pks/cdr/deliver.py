"""The delivery process of call records: reads the spool, feeds the sinks.

``python -m pks.cdr.deliver`` is started by :class:`pks.cdr.service.CdrService`, one per
proxy process, and is not meant to be run by hand. Its standard input is a pipe from the
proxy: the first line is its configuration (JSON: the spool, the sinks and their settings —
a webhook's token travels here, never on the command line); then every byte means "records
were spooled" (wake up), and the end of the pipe means "stop": the sinks get ``grace``
seconds to deliver what is left, the rest waits in the spool for the next start. The proxy
dying closes the pipe too, so this process never outlives it.

Apart from the proxy's event loop by design: turning records into JSON objects, the HTTP
requests and the database transactions of the sinks cost no time under the proxy's GIL.

One thread per sink reads a batch after its cursor, delivers it, commits, and — unless the
batch was full — waits ``linger`` seconds for the next one to fill; a failing sink is
retried after ``backoff`` seconds, doubled at each failure up to ``backoff_max``, and its
records wait on disk meanwhile — the others are not held up. Each delivery and failure
updates ``status.json`` in the spool (what ``/status`` and ``/metrics`` show of the sinks).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from pks.cdr.fields import Packed
from pks.cdr.sinks import Sink, make_sinks
from pks.cdr.spool import STATUS, SpoolReader

__all__ = ["main", "run"]

log = logging.getLogger("pks.cdr")

LINGER = 1.0  # seconds between two deliveries of a sink while its batches are not full


def _background() -> None:
    """Run only on the CPU time the proxy leaves (Linux ``SCHED_IDLE``, else nice 19): where
    this process and the proxy want the same core, datagrams go first and the records wait in
    the spool (bounded, on disk) a little longer."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)


class _Delivery:
    """One sink's thread: read a batch after its cursor, deliver, commit; back off on error."""

    def __init__(
        self,
        sink: Sink,
        spool: SpoolReader,
        batch: int,
        backoff: float,
        backoff_max: float,
        stopping: threading.Event,
        changed: threading.Event,
        linger: float = LINGER,
    ) -> None:
        self.sink = sink
        self.spool = spool
        self.batch = batch
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.linger = linger
        self.stopping = stopping
        self.changed = changed
        self.delivered = 0
        self.failures = 0
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self.give_up_at: float | None = None  # set at stop: deliver until then, no later
        self.thread = threading.Thread(target=self._run, name=f"pks-cdr-{sink.name}", daemon=True)

    def _over(self) -> bool:
        """Stopping, and nothing left to deliver or no time left to do it."""
        if not self.stopping.is_set():
            return False
        if self.give_up_at is None or time.monotonic() >= self.give_up_at:
            return True
        return not self.spool.pending(self.sink.name)

    def _run(self) -> None:
        delay = self.backoff
        name = self.sink.name
        while not self._over():
            lines, cursor = self.spool.read(name, self.batch)
            if not lines:
                self.spool.wait(name, 0.5)
                continue
            try:
                self.sink.deliver([Packed(*orjson.loads(line)) for line in lines])
            except Exception as exc:
                self.failures += 1
                self.last_error = " ".join(str(exc).split())[:300] or type(exc).__name__
                self.changed.set()
                if self.failing_since is None:
                    self.failing_since = time.time()
                    log.warning(
                        "call records: sink %s failed (%s); records are kept in the"
                        " spool and retried",
                        name,
                        self.last_error,
                    )
                self.stopping.wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            self.spool.commit(name, cursor)
            self.delivered += len(lines)
            self.changed.set()
            if self.failing_since is not None:
                down = time.time() - self.failing_since
                log.warning("call records: sink %s delivers again after %.1f s", name, down)
                self.failing_since = None
            delay = self.backoff
            if len(lines) < self.batch:  # a trickle: gather a bigger batch (fewer transactions)
                self.stopping.wait(self.linger)

    def status(self) -> dict[str, object]:
        return {
            "sink": self.sink.name,
            "delivered": self.delivered,
            "failures": self.failures,
            "failing": self.failing_since is not None,
            "last_error": self.last_error,
        }


def _write_status(path: Path, deliveries: list[_Delivery]) -> None:
    tmp = path / f".{STATUS}.tmp"
    tmp.write_text(json.dumps({"pid": os.getpid(), "sinks": [d.status() for d in deliveries]}))
    os.replace(tmp, path / STATUS)


def run(config: dict[str, Any], wakeups: Any) -> None:
    """Deliver until ``wakeups`` (the pipe from the proxy) ends, then for ``grace`` more."""
    sinks = make_sinks(
        tuple(config["sinks"]),
        file=config.get("file"),
        webhook_url=config.get("webhook_url"),
        webhook_token=config.get("webhook_token"),
        webhook_timeout=float(config.get("webhook_timeout", 10.0)),
        db_url=config.get("db_url") or "",
    )
    path = Path(config["spool"])
    spool = SpoolReader(path, tuple(s.name for s in sinks))
    stopping, changed = threading.Event(), threading.Event()
    deliveries = [
        _Delivery(
            s,
            spool,
            int(config.get("batch", 500)),
            float(config.get("backoff", 1.0)),
            float(config.get("backoff_max", 60.0)),
            stopping,
            changed,
            float(config.get("linger", LINGER)),
        )
        for s in sinks
    ]
    _write_status(path, deliveries)
    for delivery in deliveries:
        delivery.thread.start()

    def listen() -> None:
        while wakeups.read1(4096):
            spool.notify()
        for delivery in deliveries:
            delivery.give_up_at = time.monotonic() + float(config.get("grace", 5.0))
        stopping.set()
        spool.notify()
        changed.set()

    threading.Thread(target=listen, name="pks-cdr-pipe", daemon=True).start()
    while any(d.thread.is_alive() for d in deliveries):
        if changed.wait(0.5):
            changed.clear()
            _write_status(path, deliveries)
    _write_status(path, deliveries)
    for sink in sinks:
        try:
            sink.close()
        except Exception as exc:
            log.warning("call records: closing sink %s: %s", sink.name, exc)


def main() -> int:
    from pks import logs

    config = json.loads(sys.stdin.buffer.readline() or b"null")
    if not isinstance(config, dict):
        return 2
    logs.setup(str(config.get("log_level", "INFO")), str(config.get("tag", "")))
    _background()
    try:
        run(config, sys.stdin.buffer)
    except Exception:
        log.exception("call records: the delivery process failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
