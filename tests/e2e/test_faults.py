"""Faults and stops, on the wire (docs/operations.md): SIGTERM while a call rings, a worker
killed while its calls ring or talk, a bad row in the database with a snapshot cache.

Callers and gateways are SIPp processes; what each received is read from its trace.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from .harness import (
    Endpoint,
    SippResult,
    Stage,
    customer,
    gateway,
    in_background,
    regex_rule,
    wait_for,
)
from .test_workers import admin_call

pytestmark = pytest.mark.e2e

NUMBER = "+33612345678"
SET = 21


def finals(result: SippResult) -> list[str]:
    """The final responses a caller received, by start line."""
    return [
        m.start_line.split(" ", 2)[1]
        for m in result.messages
        if m.received and m.method is None and not m.start_line.split(" ", 2)[1].startswith("1")
    ]


def test_sigterm_while_ringing_answers_the_caller_and_cancels_the_gateway(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    # several late callers: with 2 workers, some hash to the one that has no call and stops
    # first; their sources must be steered to the worker still draining
    lates = [stage.endpoint() for _ in range(3)]
    gw = stage.uas("uas_ring_no_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[customer(caller)] + [customer(e, tag=f"ipbx{i + 2}") for i, e in enumerate(lates)],
        dialplan=[regex_rule(2, r"^\+33", SET)],
        dispatcher=[gateway(SET, trunk)],
        env={"PKS_DRAIN_TIMEOUT": "3", "PKS_FR_INV_TIMER": "60"},
    )
    thread, ringing = in_background(
        lambda: stage.uac("uac_ring_then_503.xml", caller, proxy.at(), service=NUMBER, timeout=30)
    )
    wait_for(lambda: "→ 127." in proxy.log(), 10, "the INVITE relayed")
    time.sleep(0.5)  # the 180 back to the caller
    began = time.monotonic()
    proxy.signal(signal.SIGTERM)
    time.sleep(0.5)
    # draining: a new call is refused with 503 (and never reaches the gateway)
    for late in lates:
        refused = stage.uac("uac_expect_503.xml", late, proxy.at(), service=NUMBER, timeout=10)
        assert refused.counts == (1, 0), refused
    assert proxy.wait(20) == 0
    stopped_after = time.monotonic() - began
    thread.join(30)
    assert ringing[0].counts == (1, 0), ringing[0]  # 180, then 503, ACKed
    assert finals(ringing[0]) == ["503"]
    served = gw.stop()
    assert served.counts == (1, 0), served  # CANCEL received, 487 sent and ACKed
    assert [m.method for m in served.messages if m.received] == ["INVITE", "CANCEL", "ACK"]
    assert 2.5 < stopped_after < 10, stopped_after  # waited PKS_DRAIN_TIMEOUT, then stopped
    assert "pks: stopping" in proxy.log()


def test_sigterm_waits_for_a_ringing_call_to_end(stage: Stage) -> None:
    """A call answered during the drain is relayed whole; the proxy exits once it is."""
    caller, trunk = stage.endpoint(), stage.endpoint()
    stage.uas("uas_answer.xml", trunk, pause_ms=1500)  # rings 1.5 s, then answers
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[regex_rule(2, r"^\+33", SET)],
        dispatcher=[gateway(SET, trunk)],
        env={"PKS_DRAIN_TIMEOUT": "20", "PKS_DRAIN_CALLS": "true"},
    )
    thread, calls = in_background(
        lambda: stage.uac("uac_call.xml", caller, proxy.at(), service=NUMBER, timeout=30)
    )
    wait_for(lambda: "→ 127." in proxy.log(), 10, "the INVITE relayed")
    began = time.monotonic()
    proxy.signal(signal.SIGTERM)

    assert proxy.wait(25) == 0
    assert time.monotonic() - began < 15  # not the whole drain timeout
    thread.join(30)
    assert calls[0].counts == (1, 0), calls[0]


# --- a worker killed (PKS_WORKERS=2) ------------------------------------------------------------


def status(stage: Stage, admin: Endpoint, path: str = "/status") -> dict:
    """An admin API answer, retried while worker 0 (which serves it) is being replaced."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return admin_call(stage, admin, {"get": path})
        except (AssertionError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def workers_env(admin: Endpoint, **more: str) -> dict[str, str]:
    return {"PKS_WORKERS": "2", "PKS_ADMIN_LISTEN": str(admin), "PKS_LOG_LEVEL": "INFO", **more}


def kill_a_worker_holding_calls(stage: Stage, admin: Endpoint) -> int:
    """SIGKILL worker 1 (worker 0 if 1 holds no call), wait for its successor; the number of
    calls it held."""
    workers = status(stage, admin)["workers"]
    victim = workers[1] if workers[1]["calls"] else workers[0]
    os.kill(victim["pid"], signal.SIGKILL)

    def replaced() -> bool:
        now = status(stage, admin)["workers"]
        return len(now) == 2 and now[victim["index"]]["pid"] != victim["pid"]

    wait_for(replaced, 30, f"worker {victim['index']} replaced")
    return int(victim["calls"])


def test_a_killed_workers_ringing_callers_are_answered(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    gw = stage.uas("uas_ring_no_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[regex_rule(2, r"^\+33", SET)],
        dispatcher=[gateway(SET, trunk)],
        env=workers_env(admin, PKS_FR_INV_TIMER="60", PKS_DRAIN_TIMEOUT="1"),
    )
    thread, ringing = in_background(
        lambda: stage.uac(
            "uac_ring_then_error.xml",
            caller,
            proxy.at(),
            service=NUMBER,
            calls=6,
            rate=50,
            limit=6,
            timeout=40,
        )
    )
    wait_for(lambda: status(stage, admin, "/limits")["calls"] == 6, 15, "6 calls ringing")
    time.sleep(0.3)  # every 180 back to the caller
    lost = kill_a_worker_holding_calls(stage, admin)
    wait_for(lambda: "took over from its dead predecessor" in proxy.log(), 15, "the take-over")
    time.sleep(1.0)  # the 500s and CANCELs on the wire, the 487s ACKed
    proxy.signal(signal.SIGTERM)  # the other calls: 503 and CANCEL

    assert proxy.wait(30) == 0
    thread.join(40)
    result = ringing[0]
    assert result.counts == (6, 0), result  # every caller got a final response
    assert sorted(finals(result)) == ["500"] * lost + ["503"] * (6 - lost), finals(result)
    assert lost >= 1
    served = gw.stop()
    assert served.counts == (6, 0), served  # 6 CANCELs, 6 487s ACKed
    assert f"{lost} unanswered call(s) answered 500 and cancelled" in proxy.log()


def test_a_killed_workers_answered_calls_still_count(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    stage.uas("uas_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[regex_rule(2, r"^\+33", SET)],
        dispatcher=[gateway(SET, trunk)],
        env=workers_env(admin),
    )
    thread, talking = in_background(
        lambda: stage.uac(
            "uac_call.xml",
            caller,
            proxy.at(),
            service=NUMBER,
            calls=6,
            rate=50,
            limit=6,
            pause_ms=8000,
            timeout=40,
        )
    )

    def counted() -> int:
        peers = status(stage, admin, "/limits")["peers"]
        return int(peers.get("ipbx", {}).get("calls", 0))

    wait_for(lambda: counted() == 6, 15, "6 answered calls counted")
    lost = kill_a_worker_holding_calls(stage, admin)
    assert lost >= 1
    assert counted() == 6  # rebuilt from the dead worker's journal, not reset
    thread.join(40)
    assert talking[0].counts == (6, 0), talking[0]  # every BYE relayed and answered
    wait_for(lambda: counted() == 0, 10, "the BYEs to free every call")


# --- a bad row in the database, good tables in the snapshot cache ------------------------------


def test_a_bad_row_at_start_up_routes_from_the_cache_until_corrected(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    stage.uas("uas_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[regex_rule(2, r"^\+33", SET)],
        dispatcher=[gateway(SET, trunk)],
        env={
            "PKS_SNAPSHOT_CACHE": "cache.json",
            "PKS_ADMIN_LISTEN": str(admin),
            "PKS_DB_POLL_INTERVAL": "0.2",
        },
    )
    proxy.stop()  # the cache now holds the good tables
    with sqlite3.connect(proxy.db_path) as db:
        db.execute("UPDATE dialplan SET match_exp = '^(+33' WHERE dpid = 2")  # no regex
    db.close()

    proxy.start()
    assert "starting from the snapshot cache" in proxy.log()
    database = status(stage, admin)["database"]
    assert database["routing_from"] == "cache", database
    assert database["reachable"] is True
    assert "dialplan" in (database["load_error"] or ""), database
    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=NUMBER, calls=2, rate=20)
    assert calls.counts == (2, 0), calls

    with sqlite3.connect(proxy.db_path) as db:  # corrected: applied without a restart
        db.execute("UPDATE dialplan SET match_exp = '^\\+33' WHERE dpid = 2")
    db.close()
    wait_for(
        lambda: status(stage, admin)["database"]["routing_from"] == "database", 10, "the reload"
    )
    assert status(stage, admin)["database"]["load_error"] is None
