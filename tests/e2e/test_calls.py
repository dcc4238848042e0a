"""Calls through the real proxy (``python -m pks run``) between SIPp peers.

Each test writes the routing tables, starts the proxy, places a few calls and checks what
both ends saw. Callers and gateways are SIPp processes, each on its own 127.0.0.x inside a
private network (see harness.py); the proxy is on 127.0.0.10. Numbers and set ids follow the
seed README: DIDs ("SDA") in dialplan 1, outbound French E.164 numbers in dialplan 2.

SIPp's message trace does not record where a message came from, so "it went through the
proxy" is read from the Via headers: the proxy puts its own address on top of every request
it forwards.
"""

from __future__ import annotations

import pytest

from .harness import PROXY_IP, Stage, carrier, customer, gateway, regex_rule

pytestmark = pytest.mark.e2e

DID = "33202020201"  # a customer's number, reached from carriers and on-net
DID_RULE = r"^3320202020[0-9]$"
E164 = "+33612345678"  # an outbound number, reached through a carrier
E164_RULE = r"^\+33[1-9][0-9]+$"
NATIONAL_RULE = r"^33[0-9]+$"  # dialplan 2 also matches the DID
UNKNOWN = "999"  # no rule matches
CUSTOMER_SET = 23
CARRIER_SET = 21

CUSTOMER_DIDS = regex_rule(1, DID_RULE, CUSTOMER_SET)
CARRIER_ROUTES = regex_rule(2, E164_RULE, CARRIER_SET)


def test_inbound_did_call_reaches_the_customer(stage: Stage) -> None:
    caller, pbx = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", pbx)
    proxy = stage.start_proxy(
        address=[carrier(caller)],
        dialplan=[CUSTOMER_DIDS],
        dispatcher=[gateway(CUSTOMER_SET, pbx)],
    )

    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=DID)

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    assert served.requests("INVITE")[0].start_line.startswith(f"INVITE sip:{DID}@")


def test_outbound_call_reaches_the_carrier(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CUSTOMER_DIDS, CARRIER_ROUTES],
        dispatcher=[gateway(CUSTOMER_SET, stage.endpoint()), gateway(CARRIER_SET, trunk)],
    )

    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=E164)

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    assert served.requests("INVITE")[0].start_line.startswith(f"INVITE sip:{E164}@")


def test_on_net_call_stays_inside(stage: Stage) -> None:
    """Customer to customer: dialplan 1 is tried before dialplan 2, which also matches."""
    caller, other_pbx, trunk = stage.endpoint(), stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", other_pbx)
    outside = stage.uas("uas_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[customer(caller, "ipbx-a"), customer(other_pbx, "ipbx-b")],
        dialplan=[CUSTOMER_DIDS, regex_rule(2, NATIONAL_RULE, CARRIER_SET)],
        dispatcher=[gateway(CUSTOMER_SET, other_pbx), gateway(CARRIER_SET, trunk)],
    )

    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=DID)

    assert calls.counts == (1, 0), calls
    assert len(callee.stop().requests("INVITE")) == 1
    assert outside.stop().requests("INVITE") == []


def test_dialog_follows_record_route(stage: Stage) -> None:
    """INVITE → 200 → ACK → BYE: the proxy record-routes, so ACK and BYE come through it."""
    caller, trunk = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CARRIER_ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk)],
    )

    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=E164, pause_ms=100)

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    (invite,) = served.requests("INVITE")
    assert any(PROXY_IP in rr for rr in invite.headers("Record-Route")), invite.text
    for request in (invite, *served.requests("ACK"), *served.requests("BYE")):
        assert request.via_hosts() == [PROXY_IP, caller.ip], request.text
        assert not any(PROXY_IP in route for route in request.headers("Route")), request.text
    assert [m.method for m in served.messages if m.received] == ["INVITE", "ACK", "BYE"]


def test_unknown_source_gets_no_answer(stage: Stage) -> None:
    known, stranger, pbx = stage.endpoint(), stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", pbx)
    proxy = stage.start_proxy(
        address=[carrier(known)],
        dialplan=[CUSTOMER_DIDS],
        dispatcher=[gateway(CUSTOMER_SET, pbx)],
    )

    calls = stage.uac("uac_expect_nothing.xml", stranger, proxy.at(), service=DID)

    assert calls.counts == (1, 0), calls  # success means: no response at all
    assert callee.stop().requests("INVITE") == []


def test_unknown_number_gets_404(stage: Stage) -> None:
    caller, pbx, trunk = stage.endpoint(), stage.endpoint(), stage.endpoint()
    gateways = [stage.uas("uas_answer.xml", at) for at in (pbx, trunk)]
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CUSTOMER_DIDS, CARRIER_ROUTES],
        dispatcher=[gateway(CUSTOMER_SET, pbx), gateway(CARRIER_SET, trunk)],
    )

    calls = stage.uac("uac_expect_404.xml", caller, proxy.at(), service=UNKNOWN)

    assert calls.counts == (1, 0), calls
    assert [gw.stop().requests("INVITE") for gw in gateways] == [[], []]


def test_carrier_cannot_use_the_outbound_dialplan(stage: Stage) -> None:
    """A carrier's request is looked up in dialplan 1 only: a dialplan-2 number is a 404."""
    caller, trunk = stage.endpoint(), stage.endpoint()
    outside = stage.uas("uas_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[carrier(caller)],
        dialplan=[CUSTOMER_DIDS, CARRIER_ROUTES],
        dispatcher=[gateway(CUSTOMER_SET, stage.endpoint()), gateway(CARRIER_SET, trunk)],
    )

    calls = stage.uac("uac_expect_404.xml", caller, proxy.at(), service=E164)

    assert calls.counts == (1, 0), calls
    assert outside.stop().requests("INVITE") == []


def test_round_robin_splits_calls_evenly(stage: Stage) -> None:
    caller, first, second = stage.endpoint(), stage.endpoint(), stage.endpoint()
    gateways = [stage.uas("uas_answer.xml", at) for at in (first, second)]
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CARRIER_ROUTES],
        dispatcher=[gateway(CARRIER_SET, first), gateway(CARRIER_SET, second)],
    )

    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=E164, calls=10, rate=20, limit=2)

    assert calls.counts == (10, 0), calls
    assert [len(gw.stop().requests("INVITE")) for gw in gateways] == [5, 5]


def test_failover_past_a_dead_gateway(stage: Stage) -> None:
    """Nothing listens at the first gateway: each call that starts there moves on after
    PKS_FR_TIMER (1 s). Round robin starts one of the two calls there."""
    caller, dead, live = stage.endpoint(), stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", live)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CARRIER_ROUTES],
        dispatcher=[gateway(CARRIER_SET, dead, priority=1), gateway(CARRIER_SET, live)],
    )

    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=E164, calls=2, limit=1)

    assert calls.counts == (2, 0), calls
    assert len(callee.stop().requests("INVITE")) == 2


def test_failover_past_a_gateway_answering_503(stage: Stage) -> None:
    """The set is [503 gateway, live gateway] (priority order); round robin starts the first
    call at the 503 gateway, which gets its ACK, and the second at the live one."""
    caller, broken_at, live_at = stage.endpoint(), stage.endpoint(), stage.endpoint()
    broken = stage.uas("uas_503.xml", broken_at)
    live = stage.uas("uas_answer.xml", live_at)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CARRIER_ROUTES],
        dispatcher=[gateway(CARRIER_SET, broken_at, priority=1), gateway(CARRIER_SET, live_at)],
    )

    calls = stage.uac("uac_call.xml", caller, proxy.at(), service=E164, calls=2, limit=1)

    assert calls.counts == (2, 0), calls
    refused = broken.stop()
    assert refused.counts == (1, 0), refused  # one INVITE, answered 503, ACKed
    assert len(live.stop().requests("INVITE")) == 2


def test_cancel_while_ringing_gives_487(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_ring_no_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CARRIER_ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk)],
    )

    calls = stage.uac("uac_cancel.xml", caller, proxy.at(), service=E164)

    assert calls.counts == (1, 0), calls  # 200 to the CANCEL, then 487 to the INVITE
    served = callee.stop()
    assert served.counts == (1, 0), served  # CANCEL received, 487 sent and ACKed
    assert [m.method for m in served.messages if m.received] == ["INVITE", "CANCEL", "ACK"]


def test_retransmitted_invite_reaches_the_callee_once(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", trunk, pause_ms=300)  # rings after the copy is sent
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CARRIER_ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk)],
    )

    calls = stage.uac(
        "uac_invite_retransmit.xml", caller, proxy.at(), service=E164, options=["-nr"]
    )

    assert calls.counts == (1, 0), calls
    sent = [m for m in calls.messages if not m.received and m.method == "INVITE"]
    assert len(sent) == 2 and sent[0].text == sent[1].text
    assert len(callee.stop().requests("INVITE")) == 1


def test_call_over_tcp(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", trunk, transport="tcp")
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CARRIER_ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk, transport="tcp")],
        transports=("udp", "tcp"),
    )

    calls = stage.uac(
        "uac_call.xml", caller, proxy.at("tcp"), service=E164, transport="tcp", pause_ms=100
    )

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    (invite,) = served.requests("INVITE")
    assert invite.vias()[0].startswith(f"SIP/2.0/TCP {PROXY_IP}:"), invite.text
    assert [m.method for m in served.messages if m.received] == ["INVITE", "ACK", "BYE"]


def test_max_forwards_zero_gets_483(stage: Stage) -> None:
    caller, trunk = stage.endpoint(), stage.endpoint()
    outside = stage.uas("uas_answer.xml", trunk)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CARRIER_ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk)],
    )

    calls = stage.uac("uac_maxfwd0.xml", caller, proxy.at(), service=E164)

    assert calls.counts == (1, 0), calls
    assert outside.stop().requests("INVITE") == []


def test_options_to_the_proxy_gets_200(stage: Stage) -> None:
    prober = stage.endpoint()
    proxy = stage.start_proxy(address=[carrier(prober)], dialplan=[CUSTOMER_DIDS])

    calls = stage.uac("uac_options_proxy.xml", prober, proxy.at())

    assert calls.counts == (1, 0), calls


def test_callee_bye_reaches_a_caller_behind_nat(stage: Stage) -> None:
    """The caller's Contact says 192.168.1.10, where nothing answers (and in the private
    network, nothing can be reached): its BYE must go to where its requests come from."""
    caller, trunk = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer_then_bye.xml", trunk, pause_ms=200)
    proxy = stage.start_proxy(
        address=[customer(caller)],
        dialplan=[CARRIER_ROUTES],
        dispatcher=[gateway(CARRIER_SET, trunk)],
    )

    calls = stage.uac(
        "uac_receive_bye.xml",
        caller,
        proxy.at(),
        service=E164,
        keys={"contact_host": "192.168.1.10"},
    )

    assert calls.counts == (1, 0), calls  # it received the BYE and answered it
    served = callee.stop()
    assert served.counts == (1, 0), served  # its BYE got the caller's 200
