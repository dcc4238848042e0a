"""The SIPp scenarios checked against each other, with no proxy between them.

Each caller scenario runs against the callee it is written for (or against a stand-in),
directly on loopback, so that a failing test in test_calls.py points at the proxy and not at
a scenario. Negative cases show that the checks inside the scenarios do bite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import SCENARIOS, Stage

pytestmark = pytest.mark.e2e


def test_call_and_callee_answer(stage: Stage) -> None:
    caller, callee_at = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", callee_at)

    calls = stage.uac("uac_call.xml", caller, callee_at, service="3312345", calls=2, pause_ms=50)

    assert calls.counts == (2, 0), calls
    served = callee.stop()
    assert served.counts == (2, 0), served
    invites = served.requests("INVITE")
    assert [m.start_line for m in invites] == [f"INVITE sip:3312345@{callee_at} SIP/2.0"] * 2
    assert len(served.requests("ACK")) == len(served.requests("BYE")) == 2


def test_call_over_tcp(stage: Stage) -> None:
    caller, callee_at = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", callee_at, transport="tcp")

    calls = stage.uac("uac_call.xml", caller, callee_at, transport="tcp")

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    assert "transport=TCP" in served.requests("INVITE")[0].headers("Contact")[0]


def test_invite_sent_twice_is_a_true_retransmission(stage: Stage) -> None:
    caller, callee_at = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer.xml", callee_at, pause_ms=300)

    calls = stage.uac("uac_invite_retransmit.xml", caller, callee_at, options=["-nr"])

    assert calls.counts == (1, 0), calls
    first, second = callee.stop().requests("INVITE")  # no proxy to absorb the copy
    assert first.text == second.text


def test_callee_hangs_up_towards_a_private_contact(stage: Stage) -> None:
    caller, callee_at = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_answer_then_bye.xml", callee_at, pause_ms=50)

    calls = stage.uac(
        "uac_receive_bye.xml", caller, callee_at, keys={"contact_host": "192.168.1.10"}
    )

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    (bye,) = [m for m in served.messages if not m.received and m.method == "BYE"]
    assert bye.start_line == f"BYE sip:sipp@192.168.1.10:{caller.port};transport=UDP SIP/2.0"
    assert bye.headers("To")[0].startswith(f"<sip:sipp@{caller}>;tag=")


def test_cancel_while_ringing(stage: Stage) -> None:
    caller, callee_at = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_ring_no_answer.xml", callee_at)

    calls = stage.uac("uac_cancel.xml", caller, callee_at)

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served
    (ack,) = served.requests("ACK")
    assert ack.vias()[0] == served.requests("INVITE")[0].vias()[0]  # same transaction


def rejecting_callee(workdir: Path, status: str) -> str:
    """uas_503.xml answering ``status`` (e.g. "404 Not Found") instead: SIPp takes no keyword
    in a status line."""
    scenario = workdir / f"uas_{status.split()[0]}.xml"
    text = (SCENARIOS / "uas_503.xml").read_text()
    scenario.write_text(text.replace("SIP/2.0 503 Service Unavailable", f"SIP/2.0 {status}"))
    return str(scenario)


def test_gateway_out_of_service(stage: Stage) -> None:
    caller, callee_at = stage.endpoint(), stage.endpoint()
    callee = stage.uas("uas_503.xml", callee_at)

    calls = stage.uac("uac_call.xml", caller, callee_at)

    assert calls.counts == (0, 1), calls  # it expected a 200
    (refusal,) = [m for m in calls.messages if m.received]
    assert refusal.start_line == "SIP/2.0 503 Service Unavailable"
    assert callee.stop().requests("ACK")  # SIPp acknowledges the final response it aborts on


@pytest.mark.parametrize(
    ("scenario", "status"),
    [("uac_expect_404.xml", "404 Not Found"), ("uac_maxfwd0.xml", "483 Too Many Hops")],
)
def test_expected_rejection(stage: Stage, tmp_path: Path, scenario: str, status: str) -> None:
    caller, callee_at = stage.endpoint(), stage.endpoint()
    callee = stage.uas(rejecting_callee(tmp_path, status), callee_at)

    calls = stage.uac(scenario, caller, callee_at)

    assert calls.counts == (1, 0), calls
    served = callee.stop()
    assert served.counts == (1, 0), served  # the ACK arrived


def test_options(stage: Stage) -> None:
    caller, responder = stage.endpoint(), stage.endpoint()
    stage.uas("uas_answer.xml", responder, options=["-aa"])

    calls = stage.uac("uac_options_proxy.xml", caller, responder)

    assert calls.counts == (1, 0), calls


def test_silence_is_success(stage: Stage) -> None:
    caller, nobody = stage.endpoint(), stage.endpoint()

    calls = stage.uac("uac_expect_nothing.xml", caller, nobody)

    assert calls.counts == (1, 0), calls
    assert len([m for m in calls.messages if m.method == "INVITE"]) == 3  # sent, and resent twice


def test_a_100_fails_expect_nothing(stage: Stage) -> None:
    caller, callee_at = stage.endpoint(), stage.endpoint()
    stage.uas("uas_answer.xml", callee_at, pause_ms=3000)  # 100, then nothing for 3 s

    calls = stage.uac("uac_expect_nothing.xml", caller, callee_at)

    assert calls.counts == (0, 1), calls


def test_a_final_response_fails_expect_nothing(stage: Stage, tmp_path: Path) -> None:
    caller, callee_at = stage.endpoint(), stage.endpoint()
    stage.uas(rejecting_callee(tmp_path, "404 Not Found"), callee_at)

    calls = stage.uac("uac_expect_nothing.xml", caller, callee_at)

    assert calls.counts == (0, 1), calls
