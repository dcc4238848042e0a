"""Flood and fraud protection on the wire: the real proxy between SIPp peers, and a real
Redis (redis-server in the test's network namespace) for the shared counters.

* a banned address (a pks_ban row, or banned by the per-source rate) gets nothing at all;
  lifting the ban (REST) lets it in again;
* a customer with max_cps N: N calls of one second pass, the next ones get 503 with
  Retry-After — with the counters in Redis, and on when Redis goes away (/status says so);
* a number starting with a blocked prefix gets 403 Destination Blocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator

import pytest

from .harness import Endpoint, Stage, customer, gateway, regex_rule

pytestmark = pytest.mark.e2e

E164 = "+33612345678"
CARRIER_SET = 21
ROUTES = regex_rule(2, r"^\+33[1-9][0-9]+$", CARRIER_SET)

OWN_TABLES = """
CREATE TABLE pks_peer (
    id INTEGER PRIMARY KEY, kind VARCHAR(16) NOT NULL, name VARCHAR(64) NOT NULL,
    tag VARCHAR(64) NOT NULL, setid INTEGER NOT NULL, socket VARCHAR(64),
    max_calls INTEGER, description VARCHAR(255) NOT NULL DEFAULT '',
    max_cps INTEGER, max_intl_calls INTEGER);
CREATE TABLE pks_ban (
    id INTEGER PRIMARY KEY, address VARCHAR(64) NOT NULL, reason VARCHAR(255) NOT NULL DEFAULT '',
    created BIGINT NOT NULL DEFAULT 0, expires BIGINT);
CREATE TABLE pks_block (
    id INTEGER PRIMARY KEY, prefix VARCHAR(32) NOT NULL, tag VARCHAR(64),
    reason VARCHAR(255) NOT NULL DEFAULT '');
"""


def admin(stage: Stage, method: str, path: str, body: object = None) -> object:
    """One admin API call from inside the test network (where the API listens)."""
    assert stage.proxy is not None
    url = f"http://{stage.proxy._env['PKS_ADMIN_LISTEN']}{path}"
    code = (
        "import httpx, json, sys; r = httpx.request(sys.argv[1], sys.argv[2], timeout=10,"
        " json=json.loads(sys.argv[3]), headers={'Content-Type': 'application/json'});"
        " print(r.text)"
    )
    import sys

    proc = stage.netns.popen(
        [sys.executable, "-c", code, method, url, json.dumps(body)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return json.loads(out)


@pytest.fixture
def redis(stage: Stage) -> Iterator[Endpoint]:
    """A redis-server of this test, inside its network namespace."""
    at = Endpoint("127.0.0.1", stage.ports.take())
    proc = stage.netns.popen(
        [
            "redis-server",
            "--port",
            str(at.port),
            "--bind",
            at.ip,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    if proc.poll() is not None:
        pytest.skip("redis-server cannot run")
    yield at
    proc.terminate()
    proc.wait(5)


def test_a_banned_address_gets_nothing(stage: Stage) -> None:
    pbx, trunk = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", trunk)
    stage.start_proxy(
        address=[customer(pbx)],
        dialplan=[ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk)],
        sql=OWN_TABLES + f"INSERT INTO pks_ban (address, reason) VALUES ('{pbx.ip}/30', 'test');",
    )
    assert stage.proxy is not None
    silent = stage.uac("uac_expect_nothing.xml", pbx, stage.proxy.at(), service=E164)
    assert silent.counts == (1, 0), silent  # no answer at all, not even 100
    assert not [m for m in silent.messages if m.received]
    assert f"ban {pbx.ip.rsplit('.', 1)[0]}." in stage.proxy.log()  # the ban, logged once
    status = admin(stage, "GET", "/status")
    assert isinstance(status, dict) and status["floods"]["dropped_banned"] >= 1
    bans = admin(stage, "GET", "/api/v1/bans")
    assert isinstance(bans, dict) and bans["in_force"][0]["origin"] == "table"
    network = bans["in_force"][0]["address"]
    lifted = admin(stage, "DELETE", f"/api/v1/bans/{network}")
    assert isinstance(lifted, dict) and lifted.get("applied"), lifted
    calls = stage.uac("uac_call.xml", pbx, stage.proxy.at(), service=E164)
    assert calls.counts == (1, 0), calls
    assert callee.stop().counts == (1, 0)


def test_a_flooding_peer_is_banned(stage: Stage) -> None:
    if int(os.environ.get("PKS_TEST_WORKERS", "1")) > 1:
        # requests reach the workers by Call-ID, and each counts its own (docs/security.md)
        pytest.skip("the per-source request rate is each worker's")
    pbx, trunk = stage.endpoint(), stage.endpoint()
    stage.uas("uas_answer.xml", trunk)
    env = {"PKS_RATE_PEER_LIMIT": "9", "PKS_RATE_WINDOW": "10", "PKS_BAN_TIME": "60"}
    proxy = stage.start_proxy(
        address=[customer(pbx)],
        dialplan=[ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk)],
        env=env,
    )
    # INVITE, ACK, BYE per call: 3 calls are 9 requests, the 4th INVITE is the 10th
    calls = stage.uac("uac_call.xml", pbx, proxy.at(), service=E164, calls=3, rate=50)
    assert calls.counts == (3, 0), calls
    silent = stage.uac("uac_expect_nothing.xml", pbx, proxy.at(), service=E164)
    assert silent.counts == (1, 0), silent
    assert not [m for m in silent.messages if m.received]
    assert f"ban {pbx.ip} for 60 s: 10 requests in 10 s (limit 9)" in proxy.log()
    bans = admin(stage, "GET", "/api/v1/bans")
    assert isinstance(bans, dict) and [b["origin"] for b in bans["in_force"]] == ["auto"]


def wait_for_second_start() -> None:
    """Begin right after a second starts, so that a burst of calls fits in one second."""
    time.sleep(1.0 - time.time() % 1.0 + 0.02)


def cps_calls(stage: Stage, pbx: Endpoint, at: Endpoint, calls: int) -> tuple[int, int, list]:
    """A burst of ``calls`` calls: (successful, failed, the 503s received, as SIPp reports
    them: each aborts its call as an unexpected message)."""
    wait_for_second_start()
    result = stage.uac(
        "uac_call.xml", pbx, at, service=E164, calls=calls, rate=1000, limit=calls, timeout=10
    )
    refusals = [
        part
        for part in result.errors.split("received 'SIP/2.0 ")[1:]
        if part.startswith("503 Service Unavailable")
    ]
    return result.successful, result.failed, refusals


def test_503_at_max_cps_plus_one_with_redis(stage: Stage, redis: Endpoint) -> None:
    pbx, trunk = stage.endpoint(), stage.endpoint()
    stage.uas("uas_answer.xml", trunk)
    peer = (
        "INSERT INTO pks_peer (kind, name, tag, setid, max_cps)"
        " VALUES ('customer', 'acme', 'ipbx', 99, 3);"
    )
    proxy = stage.start_proxy(
        address=[customer(pbx)],
        dialplan=[ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk)],
        sql=OWN_TABLES + peer,
        env={"PKS_REDIS_URL": f"redis://{redis}/0"},
    )
    time.sleep(0.3)
    status = admin(stage, "GET", "/status")
    assert isinstance(status, dict) and status["floods"]["cluster"]["mode"] == "cluster"
    ok, failed, refusals = cps_calls(stage, pbx, proxy.at(), 4)
    assert (ok, failed) == (3, 1)
    assert len(refusals) == 1 and "\nRetry-After: 1\n" in refusals[0]
    # the cluster's count is in Redis, in the hash of that second (pushed every 100 ms)
    scan = [*stage.netns.prefix, "redis-cli", "-p", str(redis.port), "--scan"]
    keys: list[str] = []
    for _ in range(20):
        found = subprocess.run([*scan, "--pattern", "pks:cps:*"], capture_output=True, text=True)
        keys = found.stdout.split()
        if keys:
            break
        time.sleep(0.1)
    assert keys
    # Redis goes away: routing goes on with local counters, and /status says so
    subprocess.run(
        [*stage.netns.prefix, "redis-cli", "-p", str(redis.port), "shutdown", "nosave"],
        capture_output=True,
        check=False,
    )
    time.sleep(0.5)
    status = admin(stage, "GET", "/status")
    assert isinstance(status, dict)
    assert status["floods"]["cluster"]["mode"] == "local (Redis unreachable)"
    ok, failed, refusals = cps_calls(stage, pbx, proxy.at(), 4)
    assert (ok, failed, len(refusals)) == (3, 1, 1)
    assert "Redis unreachable" in proxy.log()


def test_a_blocked_prefix_gets_403(stage: Stage) -> None:
    pbx, trunk = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", trunk)
    block = "INSERT INTO pks_block (prefix, tag, reason) VALUES ('+3361', NULL, 'premium-rate');"
    proxy = stage.start_proxy(
        address=[customer(pbx)],
        dialplan=[ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk)],
        sql=OWN_TABLES + block,
    )
    refused = stage.uac("uac_expect_403.xml", pbx, proxy.at(), service=E164)
    assert refused.counts == (1, 0), refused
    calls = stage.uac("uac_call.xml", pbx, proxy.at(), service="+33712345678")
    assert calls.counts == (1, 0), calls
    assert callee.stop().counts == (1, 0)  # the blocked call never reached the carrier
    assert "starts with +3361, blocked for every peer: premium-rate" in proxy.log()
