"""Interop with a real user agent: two baresip processes (Debian's ``baresip-core``) calling
each other through the proxy over UDP and TCP.

One baresip plays the customer's IP-PBX (account ``33202020201``, a DID of dialplan 1), the
other the carrier's gateway (account ``+33612345678``, an outbound number of dialplan 2); each
answers automatically (``answermode=auto``) and sends a tone read from a WAV file (``aufile``).
Calls are placed and hung up through ``ctrl_tcp``; a call is up when both sides report
``CALL_ESTABLISHED`` and over when both report ``CALL_CLOSED``. Skipped without baresip, a
failure when ``CI`` is set (like the SIPp tests).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from .baresip import Baresip
from .harness import Endpoint, Stage, regex_rule

pytestmark = pytest.mark.e2e

DID, E164 = "33202020201", "+33612345678"
# baresip does not bind the TCP connections it opens to its SIP address: they come from the
# namespace's default loopback source, while its Contact names its own address — as with a
# PBX behind NAT, only the proxy's Contact alias leads back to that connection. Requests
# from there are a customer's (dialplan 1 first: the DID; then dialplan 2: E.164).
LOOPBACK = "127.0.0.1"
CUSTOMER_SET, CARRIER_SET = 23, 21


@pytest.fixture
def agents(stage: Stage) -> Iterator[list[Baresip]]:
    if shutil.which("baresip") is None:
        reason = "baresip is not installed (apt-get install baresip-core)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{reason} (CI is set, so this is an error)", pytrace=False)
        pytest.skip(reason)
    started: list[Baresip] = []
    yield started
    for agent in started:
        agent.stop()


def start_agent(stage: Stage, agents: list[Baresip], name: str, user: str) -> Baresip:
    at = stage.endpoint()
    tls = stage.ports.take()  # baresip listens for TLS on the SIP port + 1
    assert tls == at.port + 1
    control = Endpoint(at.ip, stage.ports.take())
    agent = Baresip(stage.netns, stage.workdir, name, user, at, control)
    agents.append(agent)
    agent.start()
    return agent


def call(caller: Baresip, callee: Baresip, uri: str, hangup_by: Baresip) -> None:
    """Dial ``uri`` from ``caller``; both sides up; ``hangup_by`` hangs up; both sides down."""
    assert caller.command("dial", uri).get("ok"), caller.log()
    for agent in (callee, caller):
        agent.wait_event("CALL_ESTABLISHED")
    assert hangup_by.command("hangup").get("ok")
    for agent in (callee, caller):
        agent.wait_event("CALL_CLOSED")


@pytest.mark.parametrize(
    ("pbx_transport", "carrier_transport"),
    [("udp", "udp"), ("tcp", "udp"), ("udp", "tcp"), ("tcp", "tcp")],
)
def test_baresip_calls_both_ways_through_the_proxy(
    stage: Stage, agents: list[Baresip], pbx_transport: str, carrier_transport: str
) -> None:
    pbx = start_agent(stage, agents, "pbx", DID)
    carrier = start_agent(stage, agents, "carrier", E164)

    def gateway_uri(agent: Baresip, transport: str) -> str:
        return f"sip:{agent.sip}" + ("" if transport == "udp" else ";transport=tcp")

    proxy = stage.start_proxy(
        address=[
            (1, pbx.sip.ip, 32, 0, "ipbx"),
            (2, carrier.sip.ip, 32, 0, "carrier"),
            (1, LOOPBACK, 32, 0, "tcp-clients"),
        ],
        dialplan=[
            regex_rule(1, r"^3320202020[0-9]$", CUSTOMER_SET),
            regex_rule(2, r"^\+33[1-9][0-9]+$", CARRIER_SET),
        ],
        dispatcher=[
            (CUSTOMER_SET, gateway_uri(pbx, pbx_transport), 0, 0, "", "pbx"),
            (CARRIER_SET, gateway_uri(carrier, carrier_transport), 0, 0, "", "carrier"),
        ],
        transports=("udp", "tcp"),
    )
    at = proxy.at("udp")

    def proxy_uri(user: str, transport: str) -> str:
        return f"sip:{user}@{at}" + ("" if transport == "udp" else ";transport=tcp")

    # PBX → carrier, the carrier hangs up; then carrier → PBX, the PBX hangs up
    call(pbx, carrier, proxy_uri(E164, pbx_transport), hangup_by=carrier)
    call(carrier, pbx, proxy_uri(DID, carrier_transport), hangup_by=pbx)
    assert "using the default" not in proxy.log()
