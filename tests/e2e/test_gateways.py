"""Gateways through the real proxy: health probing with SIPp gateways, and two sockets.

Probing: two SIPp gateways answer OPTIONS and calls; one stops; the proxy's OPTIONS go
unanswered, the gateway goes ``probing`` then ``inactive`` (seen in ``dispatcher.list``), no
call is sent to it, and when a SIPp answers again at its address it comes back ``active``.
Sockets: the proxy listens on a public and a private socket; a carrier's call arrives on the
public one and reaches the IP-PBX from the private one (``socketname=ipbx``), with a double
Record-Route showing each leg its own socket.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .harness import Endpoint, Stage, carrier, customer, regex_rule

pytestmark = pytest.mark.e2e

NUMBER = "+33612345678"
DID = "33202020201"
SET = 21
RPC = (
    "import httpx, json, sys; print(json.dumps(httpx.post(sys.argv[1] + '/RPC', json={"
    "'jsonrpc': '2.0', 'id': 1, 'method': 'dispatcher.list'}, timeout=10).json()))"
)


def states(stage: Stage, admin: Endpoint) -> dict[str, dict]:
    """URI → destination record of set 21, from the proxy's ``dispatcher.list``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
    proc = stage.netns.popen(
        [sys.executable, "-c", RPC, f"http://{admin}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    found: dict[str, dict] = {}
    for record in json.loads(out)["result"]["RECORDS"]:
        if record["SET"]["ID"] == SET:
            for target in record["SET"]["TARGETS"]:
                found[target["DEST"]["URI"]] = target["DEST"]
    return found


def wait_state(stage: Stage, admin: Endpoint, uri: str, wanted: str, seen: list[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        flags = states(stage, admin)[uri]["FLAGS"]
        if not seen or seen[-1] != flags:
            seen.append(flags)
        if flags.startswith(wanted):
            return
        time.sleep(0.2)
    raise AssertionError(f"{uri} never reached {wanted}: went {seen}")


def invites_to(log: str, at: Endpoint) -> int:
    return sum(1 for line in log.splitlines() if "INVITE" in line and f"→ {at}" in line)


def test_silent_gateway_is_taken_out_and_comes_back(stage: Stage) -> None:
    caller, gw_a, gw_b = stage.endpoint(), stage.endpoint(), stage.endpoint()
    admin = Endpoint("127.0.0.1", stage.ports.take())
    a = stage.uas("uas_answer_options.xml", gw_a)
    stage.uas("uas_answer_options.xml", gw_b)
    uri_a = gw_a.sip_uri()
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[regex_rule(2, r"^\+33", SET)],
        dispatcher=[(SET, uri_a, 0, 0, "", "a"), (SET, gw_b.sip_uri(), 0, 0, "", "b")],
        env={
            "PKS_ADMIN_LISTEN": str(admin),
            "PKS_DS_PING_INTERVAL": "0.5",
            "PKS_FR_TIMER": "0.5",
            "PKS_DS_PROBING_THRESHOLD": "2",
            "PKS_DS_INACTIVE_THRESHOLD": "2",
        },
    )
    seen: list[str] = []
    wait_state(stage, admin, uri_a, "A", seen)
    first = states(stage, admin)[uri_a]
    assert first["PROBE"]["last_code"] == 200 and first["PROBE"]["latency"] is not None

    a.stop()  # gateway A goes silent
    wait_state(stage, admin, uri_a, "I", seen)
    assert seen[-2:] == ["TP", "IP"] or seen[-1] == "IP", seen

    before = invites_to(proxy.log(), gw_a)
    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=NUMBER, calls=6, rate=20, limit=3)
    assert calls.counts == (6, 0), calls
    assert invites_to(proxy.log(), gw_a) == before  # nothing to the inactive gateway

    stage.uas("uas_answer_options.xml", gw_a)  # A answers again
    wait_state(stage, admin, uri_a, "A", seen)
    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=NUMBER, calls=4, rate=20, limit=1)
    assert calls.counts == (4, 0), calls
    assert invites_to(proxy.log(), gw_a) >= before + 1
    log = proxy.log()
    assert log.count(f"gateway {uri_a} (set {SET}) probing → inactive") == 1
    assert log.count(f"gateway {uri_a} (set {SET}) inactive → active") == 1


def test_carrier_call_on_public_socket_reaches_the_pbx_from_the_private_one(
    stage: Stage,
) -> None:
    trunk, pbx = stage.endpoint(), stage.endpoint()
    private = Endpoint("127.0.0.9", stage.ports.take())
    callee = stage.uas("uas_answer.xml", pbx)
    proxy = stage.start_proxy(
        address=[carrier(trunk)],
        dialplan=[regex_rule(1, r"^3320202020[0-9]$", 23)],
        dispatcher=[(23, pbx.sip_uri(), 0, 0, "socketname=ipbx", "pbx")],
        more_sockets=[f"udp:{private};name=ipbx"],
    )
    public = proxy.at()

    calls = stage.uac("uac_call.xml", trunk, public, service=DID)

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    invite = served.requests("INVITE")[0]
    assert invite.via_hosts()[0] == private.ip  # it left from the private socket
    rr = [value.strip() for value in invite.headers("Record-Route")]
    rr = [part.strip() for value in rr for part in value.split(",")]
    assert f"{private.ip}:{private.port}" in rr[0] and "r2=on" in rr[0]
    assert f"{public.ip}:{public.port}" in rr[1] and "r2=on" in rr[1]
    # the caller's ACK and BYE came back through the proxy to the PBX's socket
    assert len(served.requests("ACK")) == 1
    bye = served.requests("BYE")[0]
    assert bye.via_hosts()[0] == private.ip


def test_gateway_named_by_srv_is_called_and_fails_over_between_targets(stage: Stage) -> None:
    caller, dead, alive = stage.endpoint(), stage.endpoint(), stage.endpoint()
    dns_at = Endpoint("127.0.0.53", stage.ports.take())
    zone = stage.workdir / "zone.txt"
    zone.write_text(
        f"_sip._udp.gw.test. 60 IN SRV 10 0 {dead.port} dead.gw.test.\n"
        f"_sip._udp.gw.test. 60 IN SRV 20 0 {alive.port} alive.gw.test.\n"
        f"dead.gw.test. 60 IN A {dead.ip}\n"
        f"alive.gw.test. 60 IN A {alive.ip}\n"
    )
    server = stage.netns.popen(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "dnstest.py"),
            dns_at.ip,
            str(dns_at.port),
            str(zone),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().startswith(b"ready")
        callee = stage.uas("uas_answer.xml", alive)
        proxy = stage.start_proxy(
            address=[customer(caller)],
            dialplan=[regex_rule(2, r"^\+33", SET)],
            dispatcher=[(SET, "sip:gw.test", 0, 0, "", "named")],
            env={"PKS_DNS_SERVERS": str(dns_at)},
        )
        calls = stage.uac("uac_call.xml", caller, proxy.at(), service=NUMBER, calls=2, limit=1)
        assert calls.counts == (2, 0), calls
        assert len(callee.stop().requests("INVITE")) == 2
        assert invites_to(proxy.log(), dead) == 2  # each call tried the first SRV target first
    finally:
        server.kill()
        server.wait()
