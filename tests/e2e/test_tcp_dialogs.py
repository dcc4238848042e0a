"""Mixed UDP/TCP dialogs through a proxy on two addresses, held past the TCP idle timeout.

The issue "Real user agents over TCP: in-dialog requests take the wrong socket or find the
connection closed", replayed with SIPp: the proxy listens with default socket names (no
``name=``) on UDP and TCP at 127.0.0.10 and at a second address, 127.0.0.9, where the peers
send. The PBX speaks TCP, the carrier UDP; each call is answered, left silent for longer than
``PKS_TCP_IDLE_TIMEOUT`` (1 s), then re-INVITEd and hung up — by the far side, or re-INVITEd by
one side and hung up by the other. Every in-dialog request must leave by the socket of the
address its Route names (no "using the default" warning), and the TCP connection a dialog
needs (the NATed PBX's own, named by its Contact's alias; ours towards the PBX) stays open.
"""

from __future__ import annotations

import pytest

from .harness import Endpoint, ProxyProcess, Stage, regex_rule

pytestmark = pytest.mark.e2e

SECOND_IP = "127.0.0.9"  # the proxy's second address (peers are .11 and up)
IDLE = "1"  # PKS_TCP_IDLE_TIMEOUT, seconds
SILENCE_MS = 2500  # how long each call stays silent: past the idle timeout, twice
DID, E164 = "33202020201", "+33612345678"
CUSTOMER_SET, CARRIER_SET = 23, 21


def two_address_proxy(stage: Stage, pbx: Endpoint, carrier: Endpoint, pbx_tcp_gw: bool) -> Endpoint:
    """Start the proxy on UDP+TCP at 127.0.0.10 and at 127.0.0.9 (default names); return where
    peers send (the second address)."""
    first = Endpoint("127.0.0.10", stage.ports.take())
    second = Endpoint(SECOND_IP, stage.ports.take())
    pbx_uri = f"sip:{pbx}" + (";transport=tcp" if pbx_tcp_gw else "")
    listen = ",".join(f"{p}:{at}" for at in (first, second) for p in ("udp", "tcp"))
    stage.start_proxy(
        address=[(1, pbx.ip, 32, 0, "ipbx"), (2, carrier.ip, 32, 0, "carrier")],
        dialplan=[
            regex_rule(1, r"^3320202020[0-9]$", CUSTOMER_SET),
            regex_rule(2, r"^\+33[1-9][0-9]+$", CARRIER_SET),
        ],
        dispatcher=[
            (CUSTOMER_SET, pbx_uri, 0, 0, "", "pbx"),
            (CARRIER_SET, f"sip:{carrier}", 0, 0, "", "carrier"),
        ],
        env={"PKS_LISTEN": listen, "PKS_TCP_IDLE_TIMEOUT": IDLE},
    )
    return second


def assert_clean(proxy: ProxyProcess | None) -> None:
    assert proxy is not None
    log = proxy.log()
    assert "using the default" not in log, log
    assert "cannot send" not in log and "not sent" not in log, log


def test_tcp_pbx_behind_nat_calls_out_and_the_carrier_reinvites_and_hangs_up(
    stage: Stage,
) -> None:
    """PBX (TCP, Contact on a private address) → carrier (UDP). After the silence, the
    carrier's re-INVITE and BYE reach the PBX through its own connection, which the proxy
    kept open past the idle timeout because the dialog needs it."""
    pbx, carrier = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer_reinvite_bye.xml", carrier, pause_ms=SILENCE_MS)
    at = two_address_proxy(stage, pbx, carrier, pbx_tcp_gw=True)

    calls = stage.uac(
        "uac_receive_reinvite_bye.xml",
        pbx,
        at,
        service=E164,
        transport="tcp",
        keys={"contact_host": "192.168.1.10"},
        timeout=20,
    )

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    (invite,) = served.requests("INVITE")
    assert invite.via_hosts()[0] == SECOND_IP, invite.text  # in on tcp:.9, out on udp:.9
    received = [m.method for m in calls.messages if m.received and m.method]
    assert received == ["INVITE", "ACK", "BYE"], calls.messages
    assert_clean(stage.proxy)


def test_carrier_calls_a_tcp_pbx_which_reinvites_and_the_carrier_hangs_up(stage: Stage) -> None:
    """Carrier (UDP) → PBX (TCP gateway). After the silence the PBX re-INVITEs over the
    connection the proxy opened to it (kept open past the idle timeout), then the carrier's
    BYE leaves by the TCP socket of the address its Route names."""
    pbx, carrier = stage.endpoint(), stage.endpoint()
    callee = stage.uas(
        "uas_answer_reinvite_wait_bye.xml", pbx, transport="tcp", pause_ms=SILENCE_MS
    )
    at = two_address_proxy(stage, pbx, carrier, pbx_tcp_gw=True)

    calls = stage.uac("uac_call_receive_reinvite.xml", carrier, at, service=DID, timeout=20)

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    for request in (*served.requests("INVITE"), *served.requests("BYE")):
        assert request.vias()[0].startswith(f"SIP/2.0/TCP {SECOND_IP}:"), request.text
    (reinvite,) = calls.requests("INVITE")
    assert reinvite.via_hosts()[0] == SECOND_IP, reinvite.text
    assert_clean(stage.proxy)
