"""The Prometheus view of :class:`pks.metrics.figures.Figures`: a ``prometheus_client``
collector that yields every metric family from figures gathered at scrape time, and the text
format (``text/plain; version=0.0.4``) the admin API serves at ``GET /metrics``.

Nothing is registered globally and nothing runs between scrapes: :func:`render` builds the
families from the figures it is given. Series with a fixed label set (methods, classes, drop
reasons) are always present, zeros included, so ``rate()`` works from the first scrape; every
loaded gateway has its series from the first second, disabled ones included (probe latency
is NaN until a probe is answered). docs/metrics.md describes each family.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from pks import __version__, accel
from pks.metrics.figures import Figures
from pks.proxy import COUNTED_METHODS
from pks.transport.tcp import DROP_REASONS

__all__ = ["CONTENT_TYPE", "DROPS", "InstanceCollector", "render"]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

#: ``pks_dropped_total`` reasons → the ``Proxy.stats`` (or transport) key counting them,
#: always shown; any other ``dropped_*``/``refused_*`` key is shown once counted.
DROPS: dict[str, str] = {
    "unknown_source": "dropped_unknown",  # not an address row nor a gateway: unparsed
    "malformed": "dropped_malformed",  # does not parse (400 when it can be answered)
    "invalid": "dropped_invalid",  # parses, fails a sanity check (400/416/420 or silence)
    "scanner": "dropped_scanner",  # a known scanner's User-Agent
    "max_calls": "refused_max_calls",  # a peer at its max_calls: 503
    "max_transactions": "refused_full",  # PKS_MAX_TRANSACTIONS held: 503 Retry-After
    "no_gateway": "refused_no_gateway",  # no usable gateway in the set (down, maxload): 503
    "routing": "refused_route",  # refused by routing: 404 no rule, 405 method, 484 number
    "response_wrong_source": "response_wrong_source",  # a response not from where we sent
    "udp_too_large": "udp_too_large",  # a datagram over PKS_MAX_MESSAGE_SIZE
    **{reason: reason for reason in DROP_REASONS},  # the TCP bounds (tcp_*)
}
CLASSES = tuple(f"{n}xx" for n in range(1, 7))
STATES = ("active", "probing", "inactive", "disabled")
GATEWAY = ("set", "uri", "socket")


def _seconds(ms: float | None) -> float:
    return math.nan if ms is None else ms / 1000.0


class InstanceCollector(Collector):
    """Metric families of one instance's :class:`Figures`."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        yield from self._process()
        yield from self._sip()
        yield from self._calls()
        yield from self._gateways()
        yield from self._operations()

    def _process(self) -> Iterator[Metric]:
        f = self.figures
        info = GaugeMetricFamily(
            "pks_build_info",
            "Version and core (compiled or pure Python); always 1",
            labels=["version", "core"],
        )
        info.add_metric([__version__, accel.status()], 1)
        yield info
        yield GaugeMetricFamily(
            "pks_start_time_seconds", "Start of the instance (Unix time)", f.started_at
        )
        yield GaugeMetricFamily("pks_workers", "Worker processes reporting", f.workers)
        lag = GaugeMetricFamily(
            "pks_event_loop_lag_seconds",
            "How late the event loop ran the last 0.5 s timer",
            labels=["worker"],
        )
        worst = GaugeMetricFamily(
            "pks_event_loop_lag_max_seconds",
            "Worst event-loop lag of the last 10 seconds",
            labels=["worker"],
        )
        for index, (last, top) in sorted(f.lag.items()):
            lag.add_metric([str(index)], last)
            worst.add_metric([str(index)], top)
        yield lag
        yield worst

    def _sip(self) -> Iterator[Metric]:
        stats = self.figures.stats
        requests = CounterMetricFamily(
            "pks_sip_requests",
            "SIP requests received from known peers, by method",
            labels=["method"],
        )
        for method in (*COUNTED_METHODS, "other"):
            requests.add_metric([method], stats.get(f"req.{method}", 0))
        yield requests
        sent = CounterMetricFamily(
            "pks_sip_responses_sent",
            "SIP responses sent upstream (relayed or ours; our 100 Trying excluded), by class",
            labels=["class"],
        )
        received = CounterMetricFamily(
            "pks_sip_responses_received",
            "SIP responses received to the requests we sent, by class",
            labels=["class"],
        )
        for name in CLASSES:
            sent.add_metric([name], stats.get(name, 0))
            received.add_metric([name], stats.get(f"resp.{name}", 0))
        yield sent
        yield received
        drops = CounterMetricFamily(
            "pks_dropped", "Messages and connections turned away, by reason", labels=["reason"]
        )
        for reason, key in DROPS.items():
            drops.add_metric([reason], stats.get(key, 0))
        known = set(DROPS.values())
        for key in sorted(stats):  # counters added since: a code constant each, bounded
            if key not in known and key.startswith(("dropped_", "refused_")):
                drops.add_metric([key.partition("_")[2]], stats[key])
        yield drops
        yield GaugeMetricFamily(
            "pks_transactions", "Transactions held in memory", self.figures.transactions
        )
        yield CounterMetricFamily(
            "pks_probes_sent", "OPTIONS keepalives sent to gateways", stats.get("probes", 0)
        )

    def _calls(self) -> Iterator[Metric]:
        f = self.figures
        labels = ["peer", "set"]
        families = {
            "started": CounterMetricFamily(
                "pks_calls_started", "INVITEs routed, by source peer tag and set", labels=labels
            ),
            "answered": CounterMetricFamily(
                "pks_calls_answered", "Calls answered (2xx), by peer tag and set", labels=labels
            ),
            "failed": CounterMetricFamily(
                "pks_calls_failed",
                "Calls ended without answer (final >= 300 but 487), by source peer tag and set",
                labels=labels,
            ),
            "cancelled": CounterMetricFamily(
                "pks_calls_cancelled",
                "Calls cancelled by the caller (487), by peer tag and set",
                labels=labels,
            ),
        }
        for counts in f.tallies:
            key = [counts.peer or "", str(counts.setid)]
            for what, family in families.items():
                family.add_metric(key, getattr(counts, what))
        yield from families.values()
        yield GaugeMetricFamily(
            "pks_calls_in_progress", "Calls open (ringing or answered, until their BYE)", f.calls
        )
        peers = GaugeMetricFamily(
            "pks_peer_calls_in_progress",
            "Calls open per source peer tag (max_calls counts)",
            labels=["peer"],
        )
        limits = GaugeMetricFamily(
            "pks_peer_max_calls", "A peer's max_calls limit", labels=["peer"]
        )
        called = {c.peer for c in f.tallies if c.peer is not None}
        for tag in sorted(set(f.by_peer) | set(f.peer_limits) | called):
            peers.add_metric([tag], f.by_peer.get(tag, 0))
        for tag, most in sorted(f.peer_limits.items()):
            limits.add_metric([tag], most)
        yield peers
        yield limits

    def _gateways(self) -> Iterator[Metric]:
        gateways = self.figures.gateways
        state = GaugeMetricFamily(
            "pks_gateway_state",
            "1 for the gateway's state, 0 for the three others",
            labels=[*GATEWAY, "state"],
        )
        families = {
            "probed": GaugeMetricFamily(
                "pks_gateway_probed", "1 when keepalives are sent to the gateway", labels=GATEWAY
            ),
            "load": GaugeMetricFamily(
                "pks_gateway_calls_in_progress", "Calls open through the gateway", labels=GATEWAY
            ),
            "maxload": GaugeMetricFamily(
                "pks_gateway_max_calls", "The gateway's maxload= (0: none)", labels=GATEWAY
            ),
            "last": GaugeMetricFamily(
                "pks_gateway_probe_latency_seconds",
                "Round trip of the last answered keepalive (NaN: none answered yet)",
                labels=GATEWAY,
            ),
            "avg": GaugeMetricFamily(
                "pks_gateway_probe_latency_avg_seconds",
                "Mean round trip of the answered keepalives (NaN: none yet)",
                labels=GATEWAY,
            ),
            "failures": GaugeMetricFamily(
                "pks_gateway_probe_failures", "Keepalives failed in a row", labels=GATEWAY
            ),
        }
        answered = CounterMetricFamily(
            "pks_gateway_probes_answered",
            "Keepalives answered (since the row last changed)",
            labels=GATEWAY,
        )
        for gw in gateways:
            key = [str(gw.setid), gw.uri, gw.socket]
            for name in STATES:
                state.add_metric([*key, name], 1 if gw.state == name else 0)
            values = {
                "probed": 1 if gw.probed else 0,
                "load": gw.load,
                "maxload": gw.maxload,
                "last": _seconds(gw.last_ms),
                "avg": _seconds(gw.avg_ms),
                "failures": gw.failures,
            }
            for name, family in families.items():
                family.add_metric(key, values[name])
            answered.add_metric(key, gw.probes)
        yield state
        yield from families.values()
        yield answered

    def _operations(self) -> Iterator[Metric]:
        f = self.figures
        log = f.reloads
        reloads = CounterMetricFamily(
            "pks_reloads",
            "Routing reloads (API, SIGHUP, table changes), by result",
            labels=["result"],
        )
        reloads.add_metric(["ok"], log.ok)
        reloads.add_metric(["failed"], log.failed)
        yield reloads
        yield SummaryMetricFamily(
            "pks_reload_duration_seconds",
            "Time taken by reloads (all workers')",
            count_value=log.ok + log.failed,
            sum_value=log.seconds,
        )
        last = math.nan if log.last_seconds is None else log.last_seconds
        yield GaugeMetricFamily(
            "pks_reload_last_duration_seconds",
            "Time taken by the last reload (NaN: none yet)",
            last,
        )
        yield GaugeMetricFamily(
            "pks_reload_last_success",
            "1 if the last reload applied, 0 if it failed (none: 1)",
            0 if log.last_ok is False else 1,
        )
        built = f.snapshot_built_at
        yield GaugeMetricFamily(
            "pks_snapshot_age_seconds",
            "Seconds since the live routing tables were built",
            math.nan if built is None else max(0.0, f.now - built),
        )
        yield GaugeMetricFamily(
            "pks_routing_from_cache",
            "1 while routing from PKS_SNAPSHOT_CACHE's tables",
            1 if f.routing_from_cache else 0,
        )
        yield GaugeMetricFamily(
            "pks_database_up", "1 if the database answered last time", 1 if f.database_up else 0
        )


def render(figures: Figures) -> bytes:
    """The text exposition format of ``figures``."""
    return generate_latest(InstanceCollector(figures))
