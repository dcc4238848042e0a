"""The instance's figures as plain values, gathered when ``/metrics`` is scraped.

Each process reports :func:`process_report` (a JSON-friendly dict: worker processes send it
to worker 0 over the channel, inside ``pks.workers.node.WorkerNode.local_stats``);
:func:`gather` adds up every process's report into one :class:`Figures` — the instance as one
view, whatever ``PKS_WORKERS`` is — with what only the leading process knows (gateway states
and probe latency, reloads, the database, the snapshot). No ``prometheus_client`` here: the
worker processes import this module, and only worker 0 serves the API.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pks.metrics.lag import LoopLag

if TYPE_CHECKING:
    from pks.health.state import GatewayStates
    from pks.proxy import Proxy

__all__ = [
    "CallCounts",
    "Figures",
    "GatewayFigure",
    "ReloadLog",
    "gateway_figures",
    "gather",
    "process_report",
]


@dataclass(slots=True)
class ReloadLog:
    """The reloads this process made (worker 0's are the instance's), since start-up."""

    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    """Their durations added up (reading the tables, building, swapping; every worker's)."""
    last_seconds: float | None = None
    last_at: float | None = None
    """Wall-clock time the last one ended."""
    last_ok: bool | None = None

    def record(self, ok: bool, seconds: float, at: float | None = None) -> None:
        if ok:
            self.ok += 1
        else:
            self.failed += 1
        self.seconds += seconds
        self.last_seconds, self.last_ok = seconds, ok
        self.last_at = time.time() if at is None else at


@dataclass(slots=True)
class CallCounts:
    """Calls from one source peer tag (None: an untagged source) to one dispatcher set."""

    peer: str | None
    setid: int
    started: int = 0
    answered: int = 0
    failed: int = 0
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class GatewayFigure:
    """One dispatcher destination: state, calls, probe outcome."""

    setid: int
    uri: str
    socket: str
    state: str  # active, probing, inactive, disabled
    probed: bool  # keepalives are sent to it
    load: int
    maxload: int  # 0: no maxload=
    probes: int  # answered probes behind the latency figures
    failures: int  # failed probes in a row
    last_ms: float | None  # latency of the last answered probe (None: none yet)
    avg_ms: float | None


@dataclass(slots=True)
class Figures:
    """Everything ``/metrics`` shows, for the whole instance, at one instant."""

    now: float
    started_at: float
    workers: int = 1
    stats: Counter[str] = field(default_factory=Counter)
    transactions: int = 0
    calls: int = 0
    by_peer: dict[str, int] = field(default_factory=dict)
    peer_limits: dict[str, int] = field(default_factory=dict)
    tallies: list[CallCounts] = field(default_factory=list)
    gateways: list[GatewayFigure] = field(default_factory=list)
    lag: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Per worker index: (last, max of the window), seconds."""
    reloads: ReloadLog = field(default_factory=ReloadLog)
    snapshot_built_at: float | None = None
    routing_from_cache: bool = False
    database_up: bool = True


def process_report(proxy: Proxy | None, lag: LoopLag | None) -> dict[str, Any]:
    """This process's share of the figures not in ``Proxy.stats``: call tallies, loop lag."""
    tallies = [t.row() for t in proxy.calls.tallies.values()] if proxy is not None else []
    return {"tallies": tallies, "lag": [lag.last, lag.max] if lag is not None else [0.0, 0.0]}


def gateway_figures(gateways: GatewayStates) -> list[GatewayFigure]:
    """Every loaded destination, disabled ones included, from its first second."""
    loads = dict(gateways.loads())  # pulls the instance-wide loads (worker processes)
    mode = gateways.probing_mode
    out = []
    for dest in gateways:  # pulls the instance-wide states
        setid, uri, socket = dest.key
        out.append(
            GatewayFigure(
                setid=setid,
                uri=uri,
                socket=socket or "",
                state=dest.state,
                probed=dest.probed(mode),
                load=loads.get(dest.key, 0),
                maxload=dest.maxload,
                probes=dest.probes,
                failures=dest.failures,
                last_ms=dest.last_ms,
                avg_ms=dest.avg_ms if dest.probes else None,
            )
        )
    out.sort(key=lambda g: (g.setid, g.uri, g.socket))
    return out


def _tallies(reports: Iterable[Mapping[str, Any]]) -> list[CallCounts]:
    summed: dict[tuple[str | None, int], CallCounts] = {}
    for report in reports:
        for peer, setid, started, answered, failed, cancelled in report.get("tallies", ()):
            key = (None if peer is None else str(peer), int(setid))
            counts = summed.get(key)
            if counts is None:
                counts = summed[key] = CallCounts(*key)
            counts.started += int(started)
            counts.answered += int(answered)
            counts.failed += int(failed)
            counts.cancelled += int(cancelled)
    return sorted(summed.values(), key=lambda c: (c.peer or "", c.setid))


def gather(
    workers: list[dict[str, Any]],
    proxy: Proxy | None,
    *,
    reloads: ReloadLog,
    started_at: float,
    database_up: bool,
    routing_from_cache: bool,
) -> Figures:
    """One view of the instance from every process's report (``WorkerNode.local_stats``'s
    form: ``index``, ``stats``, ``transactions``, ``calls``, ``by_peer``, ``metrics``) and
    the leading process's proxy (gateways, limits, snapshot)."""
    figures = Figures(now=time.time(), started_at=started_at, workers=max(1, len(workers)))
    by_peer: Counter[str] = Counter()
    for worker in workers:
        figures.stats.update({str(k): int(v) for k, v in worker.get("stats", {}).items()})
        figures.transactions += int(worker.get("transactions", 0))
        figures.calls += int(worker.get("calls", 0))
        by_peer.update({str(k): int(v) for k, v in worker.get("by_peer", {}).items()})
        last, worst = worker.get("metrics", {}).get("lag", (0.0, 0.0))
        figures.lag[int(worker.get("index", 0))] = (float(last), float(worst))
    figures.by_peer = dict(by_peer)
    figures.tallies = _tallies(w.get("metrics", {}) for w in workers)
    figures.reloads = reloads
    figures.database_up = database_up
    figures.routing_from_cache = routing_from_cache
    if proxy is not None:
        snapshot = proxy.snapshot
        if snapshot is not None:
            figures.snapshot_built_at = snapshot.built_at
            figures.peer_limits = dict(snapshot.peer_limits)
        figures.gateways = gateway_figures(proxy.gateways)
    return figures
