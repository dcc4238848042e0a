"""Call records (CDRs): one record per call attempt, written off the event loop to the
database (``pks_cdr`` and Kamailio's ``acc``), a JSON-lines file and/or an HTTP webhook,
through a bounded on-disk spool (docs/cdr.md).

* :mod:`pks.cdr.record` — the core's side (compiled with it): the record and the bounded
  queue of finished ones;
* :mod:`pks.cdr.fields` — a record as written (JSON object, wall-clock times);
* :mod:`pks.cdr.service`, :mod:`pks.cdr.spool` — the proxy's side of the I/O: the writer
  thread, the spool, the delivery process it starts;
* :mod:`pks.cdr.deliver`, :mod:`pks.cdr.sinks` — the delivery process and the sinks it feeds;
* :mod:`pks.cdr.query` — reading them back (``pks cdr``, ``GET /api/v1/cdrs``).

:func:`start` is what the server calls: nothing at all when ``PKS_CDR_SINKS`` is empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pks.cdr.record import Recorder
    from pks.cdr.service import CdrService
    from pks.config import Settings
    from pks.route.snapshot import Snapshot

__all__ = ["spool_path", "start"]


class _Calls(Protocol):
    recorder: Recorder | None


class Core(Protocol):
    """What :func:`start` needs of the proxy (``pks.proxy.Proxy``)."""

    @property
    def calls(self) -> _Calls: ...
    @property
    def snapshot(self) -> Snapshot | None: ...
    @property
    def wall_offset(self) -> float: ...


def spool_path(settings: Settings, worker: int | None) -> Path:
    """The spool directory of this process: ``PKS_CDR_SPOOL``, or its ``w<index>``
    subdirectory for a worker process."""
    base = Path(settings.cdr_spool).expanduser()
    return base if worker is None else base / f"w{worker}"


def start(settings: Settings, proxy: Core, worker: int | None = None) -> CdrService | None:
    """Give ``proxy`` a recorder and start the writer and the deliveries (None: records
    off). ``worker``: this worker process's index (None: a single process)."""
    if not settings.cdr_sink_names:
        return None
    from pks.cdr.record import Recorder
    from pks.cdr.service import CdrService, SinkConfig
    from pks.route.authorize import authorize

    recorder = Recorder(settings.cdr_queue_max)

    def peer_of(host: str, port: int) -> str | None:
        """The tag of a refused call's source, from the live tables."""
        snapshot = proxy.snapshot
        peer = authorize(snapshot, host, port) if snapshot is not None else None
        return None if peer is None else peer.tag

    sinks = SinkConfig(
        settings.cdr_sink_names,
        file=settings.cdr_file,
        webhook_url=settings.cdr_webhook_url,
        webhook_token=settings.cdr_webhook_token,
        webhook_timeout=settings.cdr_webhook_timeout,
        db_url=settings.cdr_db_url or settings.db_url,
        batch=settings.cdr_batch,
        backoff_max=settings.cdr_retry_max,
    )
    service = CdrService(
        recorder,
        sinks,
        spool_path(settings, worker),
        settings.cdr_spool_max,
        wall_offset=lambda: proxy.wall_offset,
        worker=worker,
        peer_of=peer_of,
    )
    service.start()
    proxy.calls.recorder = recorder
    return service
