"""The proxy with ``PKS_WORKERS=2``: one instance for the operator, two processes inside.

A customer's IP-PBX (one SIPp socket, so the kernel gives all its datagrams to one worker)
places calls through the proxy to two gateways. Each call belongs to the worker its Call-ID
hashes to; the kernel steering program (pks.workers.steer) delivers each message, the
gateways' answers included, to its owner's socket (no handoff in ``/status``), every call
succeeds, round robin splits
the calls evenly across the instance, and ``dispatcher.set_state`` through the admin API
(served by worker 0) applies to both workers. A killed worker is replaced.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .harness import Endpoint, Stage, customer, gateway, in_background, regex_rule

pytestmark = pytest.mark.e2e

NUMBER = "+33612345678"
SET = 21
CALL = (
    "import httpx, json, sys; base, how = sys.argv[1], json.loads(sys.argv[2]);"
    " r = httpx.post(base + '/RPC', json=how, timeout=30) if 'method' in how"
    " else httpx.get(base + how['get'], timeout=30); print(json.dumps(r.json()))"
)


def admin_call(stage: Stage, admin: Endpoint, how: dict) -> dict:
    """An admin API call made inside the test network: a JSON-RPC method or ``{"get": path}``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
    if "method" in how:
        how = {"jsonrpc": "2.0", "id": 1, "params": [], **how}
    proc = stage.netns.popen(
        [sys.executable, "-c", CALL, f"http://{admin}", json.dumps(how)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out)


def start(stage: Stage, gateways: list[Endpoint], caller: Endpoint, admin: Endpoint):
    return stage.start_proxy(
        address=[customer(caller)],
        dialplan=[regex_rule(2, r"^\+33", SET)],
        dispatcher=[gateway(SET, at) for at in gateways],
        env={"PKS_WORKERS": "2", "PKS_ADMIN_LISTEN": str(admin), "PKS_LOG_LEVEL": "INFO"},
    )


def test_two_workers_are_one_instance(stage: Stage) -> None:
    caller, first, second = stage.endpoint(), stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    gateways = [stage.uas("uas_answer.xml", at) for at in (first, second)]
    proxy = start(stage, [first, second], caller, admin)

    calls = stage.uac(
        "uac_call.xml", caller, proxy.at(), service=NUMBER, calls=20, rate=40, limit=4, timeout=30
    )

    assert calls.counts == (20, 0), calls
    workers = admin_call(stage, admin, {"get": "/status"})["workers"]
    assert [w["index"] for w in workers] == [0, 1]
    assert all(w["requests"] > 0 for w in workers), workers  # both routed calls
    # the kernel steering program delivered every message to its owner: no loopback hop
    assert sum(w["handed_off"] for w in workers) == 0, workers
    assert sum(w["handed_off"] for w in workers) == sum(w["handed_in"] for w in workers)
    assert all(w["handoff_failed"] == 0 for w in workers), workers
    stats = admin_call(stage, admin, {"method": "tm.stats"})["result"]
    assert stats["created"] >= 40  # 20 INVITEs and 20 BYEs, over both workers
    assert [len(gw.stop().requests("INVITE")) for gw in gateways] == [10, 10]


def test_set_state_through_the_api_reaches_every_worker(stage: Stage) -> None:
    caller, first, second = stage.endpoint(), stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    gw_first = stage.uas("uas_answer.xml", first)
    gw_second = stage.uas("uas_answer.xml", second)
    proxy = start(stage, [first, second], caller, admin)

    answer = admin_call(
        stage, admin, {"method": "dispatcher.set_state", "params": ["i", SET, first.sip_uri()]}
    )
    assert answer.get("result") == "Ok. Dispatcher state updated.", answer
    calls = stage.uac(
        "uac_call.xml", caller, proxy.at(), service=NUMBER, calls=12, rate=40, limit=4, timeout=30
    )

    assert calls.counts == (12, 0), calls
    assert len(gw_first.stop().requests("INVITE")) == 0
    assert len(gw_second.stop().requests("INVITE")) == 12
    listed = admin_call(stage, admin, {"method": "dispatcher.list"})["result"]
    states = {
        t["DEST"]["URI"]: t["DEST"]["STATE"] for r in listed["RECORDS"] for t in r["SET"]["TARGETS"]
    }
    assert states == {first.sip_uri(): "inactive", second.sip_uri(): "active"}
    workers = admin_call(stage, admin, {"get": "/status"})["workers"]
    assert all(w["requests"] > 0 for w in workers), workers


def test_a_killed_worker_is_replaced(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    stage.uas("uas_answer.xml", trunk)
    proxy = start(stage, [trunk], caller, admin)
    before = admin_call(stage, admin, {"get": "/status"})["workers"]
    os.kill(before[1]["pid"], signal.SIGKILL)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = admin_call(stage, admin, {"get": "/status"})["workers"]
        if len(workers) == 2 and workers[1]["pid"] != before[1]["pid"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"worker 1 not replaced: {workers}")

    calls = stage.uac(
        "uac_call.xml", caller, proxy.at(), service=NUMBER, calls=10, rate=40, limit=4, timeout=30
    )
    assert calls.counts == (10, 0), calls
    assert "worker 1 exited with status -9" in proxy.log()


def test_limits_count_the_calls_of_every_worker(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    stage.uas("uas_answer.xml", trunk)
    proxy = start(stage, [trunk], caller, admin)
    held, results = in_background(
        lambda: stage.uac(
            "uac_call.xml",
            caller,
            proxy.at(),
            service=NUMBER,
            calls=6,
            rate=50,
            limit=6,
            pause_ms=4000,
            timeout=30,
        )
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            limits = admin_call(stage, admin, {"get": "/limits"})
            if limits["calls"] == 6:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"never 6 calls at once: {limits}")
        assert [g["calls"] for g in limits["gateways"]] == [6]
    finally:
        held.join(timeout=40)
    assert results and results[0].counts == (6, 0), results
    assert admin_call(stage, admin, {"get": "/limits"})["calls"] == 0
