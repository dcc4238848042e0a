"""``GET /metrics`` of a proxy with ``PKS_WORKERS=2`` after known SIPp traffic, parsed by the
Prometheus client's own parser: one view of the instance (calls of both workers added up),
gateway states and probe latency for every gateway (disabled and dead ones included), drops.

A customer's IP-PBX places 20 calls to set 21 (two SIPp gateways answering calls and
keepalives, and a disabled one) and 5 calls to set 22 (a SIPp gateway answering 486, not
probed: ``ping=0``); a stranger's INVITE is dropped unanswered; set 23's gateway answers
nothing and goes inactive; one reload is made through the API.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .harness import Endpoint, Stage, customer, regex_rule
from .test_scenarios import SCENARIOS, rejecting_callee
from .test_workers import admin_call

pytestmark = pytest.mark.e2e

GET = (
    "import httpx, sys; r = httpx.get(sys.argv[1] + '/metrics', timeout=30);"
    " assert r.status_code == 200, r.text; print(r.headers['content-type']); print(r.text)"
)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(stage: Stage, admin: Endpoint) -> Samples:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
    proc = stage.netns.popen(
        [sys.executable, "-c", GET, f"http://{admin}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    content_type, text = out.decode().split("\n", 1)
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def expecting(workdir: Path, code: str) -> str:
    """uac_expect_404.xml expecting ``code`` instead."""
    scenario = workdir / f"uac_expect_{code}.xml"
    text = (SCENARIOS / "uac_expect_404.xml").read_text()
    scenario.write_text(text.replace('<recv response="404"/>', f'<recv response="{code}"/>'))
    return str(scenario)


def test_metrics_of_two_workers_after_sipp_traffic(stage: Stage, tmp_path: Path) -> None:
    caller, gw_a, gw_b, busy = (stage.endpoint() for _ in range(4))
    off, dead, stranger = stage.endpoint(), stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    answering = [stage.uas("uas_answer_options.xml", at) for at in (gw_a, gw_b)]
    stage.uas(rejecting_callee(tmp_path, "486 Busy Here"), busy)
    stage.start_proxy(
        address=[customer(caller, "acme")],
        dialplan=[regex_rule(2, r"^\+33", 21), regex_rule(2, r"^\+44", 22)],
        dispatcher=[
            (21, gw_a.sip_uri(), 0, 0, "", "a"),
            (21, gw_b.sip_uri(), 0, 0, "", "b"),
            (21, off.sip_uri(), 4, 0, "", "disabled"),
            (22, busy.sip_uri(), 0, 0, "ping=0", "busy"),
            (23, dead.sip_uri(), 0, 0, "", "silent"),
        ],
        env={
            "PKS_WORKERS": "2",
            "PKS_ADMIN_LISTEN": str(admin),
            "PKS_LOG_LEVEL": "INFO",
            "PKS_DS_PING_INTERVAL": "0.5",
            "PKS_FR_TIMER": "0.5",
            "PKS_DS_PROBING_THRESHOLD": "2",
            "PKS_DS_INACTIVE_THRESHOLD": "2",
        },
    )
    proxy = stage.proxy
    assert proxy is not None
    first = scrape(stage, admin)
    # from the first second: every gateway, each in exactly one state
    for at in (gw_a, gw_b, off, busy, dead):
        setid = {gw_a: 21, gw_b: 21, off: 21, busy: 22, dead: 23}[at]
        states = {
            s: value(
                first, "pks_gateway_state", set=str(setid), uri=at.sip_uri(), socket="", state=s
            )
            for s in ("active", "probing", "inactive", "disabled")
        }
        assert sum(states.values()) == 1, (at, states)
    assert value(first, "pks_workers") == 2

    calls = stage.uac(
        "uac_call.xml", caller, proxy.at(), service="+33612345678", calls=20, rate=40, limit=4
    )
    assert calls.counts == (20, 0), calls
    rejected = stage.uac(
        expecting(tmp_path, "486"), caller, proxy.at(), service="+44123456", calls=5, rate=20
    )
    assert rejected.counts == (5, 0), rejected
    ignored = stage.uac("uac_expect_nothing.xml", stranger, proxy.at(), service="+33612345678")
    assert ignored.counts == (1, 0), ignored
    assert admin_call(stage, admin, {"method": "dispatcher.reload"}).get("error") is None

    deadline = time.monotonic() + 20  # the silent gateway's probes time out (0.5 s, twice)
    while True:
        samples = scrape(stage, admin)
        gone = value(
            samples, "pks_gateway_state", set="23", uri=dead.sip_uri(), socket="", state="inactive"
        )
        if gone == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert gone == 1

    # both workers' calls, added up
    assert value(samples, "pks_event_loop_lag_seconds", worker="0") >= 0
    assert value(samples, "pks_event_loop_lag_seconds", worker="1") >= 0
    to_21, to_22 = {"peer": "acme", "set": "21"}, {"peer": "acme", "set": "22"}
    assert value(samples, "pks_calls_started_total", **to_21) == 20
    assert value(samples, "pks_calls_answered_total", **to_21) == 20
    assert value(samples, "pks_calls_failed_total", **to_21) == 0
    assert value(samples, "pks_calls_started_total", **to_22) == 5
    assert value(samples, "pks_calls_answered_total", **to_22) == 0
    assert value(samples, "pks_calls_failed_total", **to_22) == 5
    assert value(samples, "pks_calls_in_progress") == 0
    assert value(samples, "pks_peer_calls_in_progress", peer="acme") == 0
    assert value(samples, "pks_sip_requests_total", method="INVITE") >= 25
    assert value(samples, "pks_sip_requests_total", method="BYE") >= 20
    assert value(samples, "pks_sip_responses_sent_total", **{"class": "4xx"}) == 5
    assert value(samples, "pks_sip_responses_sent_total", **{"class": "2xx"}) >= 40
    assert value(samples, "pks_sip_responses_received_total", **{"class": "4xx"}) >= 5
    assert value(samples, "pks_dropped_total", reason="unknown_source") >= 1
    assert value(samples, "pks_dropped_total", reason="max_calls") == 0

    # gateway states and probe latency, the disabled gateway included
    def gateway(at: Endpoint, setid: int) -> dict[str, float]:
        labels = {"set": str(setid), "uri": at.sip_uri(), "socket": ""}
        found = {
            s: value(samples, "pks_gateway_state", **labels, state=s)
            for s in ("active", "probing", "inactive", "disabled")
        }
        state = next(s for s, v in found.items() if v == 1)
        return {
            "state": state,
            "latency": value(samples, "pks_gateway_probe_latency_seconds", **labels),
            "probed": value(samples, "pks_gateway_probed", **labels),
            "answered": value(samples, "pks_gateway_probes_answered_total", **labels),
        }

    for at in (gw_a, gw_b):
        seen = gateway(at, 21)
        assert seen["state"] == "active" and seen["probed"] == 1, seen
        assert seen["answered"] > 0 and 0 <= seen["latency"] < 1, seen
    disabled = gateway(off, 21)
    assert disabled["state"] == "disabled" and disabled["probed"] == 0
    assert math.isnan(disabled["latency"])
    assert gateway(busy, 22)["probed"] == 0
    assert gateway(dead, 23)["state"] == "inactive"
    assert math.isnan(gateway(dead, 23)["latency"])
    assert value(samples, "pks_probes_sent_total") > 0

    # operations
    assert value(samples, "pks_reloads_total", result="ok") == 1
    assert value(samples, "pks_reload_duration_seconds_count") == 1
    assert value(samples, "pks_reload_last_success") == 1
    assert value(samples, "pks_database_up") == 1
    assert value(samples, "pks_routing_from_cache") == 0
    assert 0 <= value(samples, "pks_snapshot_age_seconds") < 120
    for gw in answering:
        gw.stop()
