"""Call records through the real proxy: answered (directly and after a failover), cancelled
and rejected calls placed by SIPp, each record compared field by field with what the SIPp
peers sent and received (Call-ID, tags, numbers, final code and reason, who hung up, the
gateways tried, the times). The file sink is used; the proxy's stop delivers the last ones."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import pytest

from .harness import SipMessage, SippResult, Stage, customer, gateway, regex_rule

pytestmark = pytest.mark.e2e

DID = "33202020201"
E164 = "+33612345678"
UNKNOWN = "999"
CUSTOMER_SET, CARRIER_SET = 23, 21


def _tag(value: str) -> str | None:
    found = re.search(r";\s*tag=([^;>\s]+)", value)
    return found.group(1) if found else None


def sent_invite(result: SippResult) -> SipMessage:
    return next(m for m in result.messages if not m.received and m.method == "INVITE")


def final_received(result: SippResult) -> SipMessage:
    return [
        m
        for m in result.messages
        if m.received
        and m.method is None
        and m.headers("CSeq")[0].endswith("INVITE")
        and int(m.start_line.split()[1]) >= 200
    ][-1]


def when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def check_against_sipp(record: dict[str, Any], uac: SippResult, caller_at: str) -> None:
    """The fields SIPp saw: Call-ID, From tag, To tag, numbers, source, final code/reason."""
    invite = sent_invite(uac)
    final = final_received(uac)
    status_line = final.start_line.split(" ", 2)
    assert record["call_id"] == invite.headers("Call-ID")[0]
    assert record["from_tag"] == _tag(invite.headers("From")[0])
    assert record["caller"] == "sipp"
    assert record["called"] == invite.start_line.split()[1].split(":")[1].split("@")[0]
    assert record["source"] == caller_at
    assert record["code"] == int(status_line[1]) and record["reason"] == status_line[2]
    if record["status"] == "answered":
        assert record["to_tag"] == _tag(final.headers("To")[0])
    assert when(record["start"]) <= when(record["end"])


def test_records_match_what_sipp_did(stage: Stage) -> None:
    callers = [stage.endpoint() for _ in range(3)]
    broken_at, live_at, ringing_at = stage.endpoint(), stage.endpoint(), stage.endpoint()
    broken = stage.uas("uas_503.xml", broken_at)
    live = stage.uas("uas_answer.xml", live_at)
    ringing = stage.uas("uas_ring_no_answer.xml", ringing_at)
    cdr_file = stage.workdir / "cdr.jsonl"
    proxy = stage.start_proxy(
        address=[customer(at, "ipbx") for at in callers],
        dialplan=[
            regex_rule(1, r"^3320202020[0-9]$", CUSTOMER_SET),
            regex_rule(2, r"^\+33[1-9][0-9]+$", CARRIER_SET),
        ],
        dispatcher=[
            gateway(CARRIER_SET, broken_at, priority=1),
            gateway(CARRIER_SET, live_at),
            gateway(CUSTOMER_SET, ringing_at),
        ],
        env={
            "PKS_CDR_SINKS": "file",
            "PKS_CDR_FILE": str(cdr_file),
            "PKS_CDR_SPOOL": str(stage.workdir / "spool"),
        },
    )

    # two calls: round robin starts the first at the 503 gateway (it fails over), the
    # second at the live one; both hung up by the caller after 500 ms
    answered = stage.uac(
        "uac_call.xml", callers[0], proxy.at(), service=E164, calls=2, pause_ms=500
    )
    cancelled = stage.uac("uac_cancel.xml", callers[1], proxy.at(), service=DID)
    rejected = stage.uac("uac_expect_404.xml", callers[2], proxy.at(), service=UNKNOWN)
    assert answered.counts == (2, 0), answered
    assert cancelled.counts == (1, 0), cancelled
    assert rejected.counts == (1, 0), rejected
    for peer in (broken, live, ringing):
        peer.stop()
    proxy.stop()  # the last records are delivered before it exits

    records = [json.loads(line) for line in cdr_file.read_text().splitlines()]
    by_call = {r["call_id"]: r for r in records}
    assert len(records) == len(by_call) == 4, records
    gw = {at: f"sip:{at.ip}:{at.port}" for at in (broken_at, live_at, ringing_at)}

    invites = [m for m in answered.messages if not m.received and m.method == "INVITE"]
    first, second = (by_call[m.headers("Call-ID")[0]] for m in invites)
    for record in (first, second):
        assert record["status"] == "answered" and record["ended_by"] == "caller"
        assert record["peer"] == "ipbx" and record["setid"] == CARRIER_SET
        assert record["gateway"] == gw[live_at]
        assert 0.4 <= record["duration"] <= 3.0, record
        assert when(record["start"]) <= when(record["answer"]) <= when(record["end"])
        assert record["code"] == 200 and record["reason"] == "OK"
    assert [(a["gateway"], a["code"]) for a in first["attempts"]] == [
        (gw[broken_at], 503),
        (gw[live_at], 200),
    ]
    assert [(a["gateway"], a["code"]) for a in second["attempts"]] == [(gw[live_at], 200)]
    # each record against its own SIPp call: the UAC's trace holds both, in order
    for n, record in enumerate((first, second)):
        one = SippResult(answered.name, 0, 1, 0, "", _call(answered, invites[n]))
        check_against_sipp(record, one, str(callers[0]))

    (cancel,) = [r for r in records if r["status"] == "cancelled"]
    check_against_sipp(cancel, cancelled, str(callers[1]))
    assert (cancel["code"], cancel["ended_by"], cancel["answer"], cancel["duration"]) == (
        487,
        "caller",
        None,
        0,
    )
    assert cancel["setid"] == CUSTOMER_SET and cancel["gateway"] == gw[ringing_at]

    (refused,) = [r for r in records if r["status"] == "rejected"]
    check_against_sipp(refused, rejected, str(callers[2]))
    assert (refused["code"], refused["peer"], refused["attempts"], refused["ended_by"]) == (
        404,
        "ipbx",
        [],
        "proxy",
    )


def _call(result: SippResult, invite: SipMessage) -> tuple[SipMessage, ...]:
    """The messages of one call of a SIPp trace (by Call-ID)."""
    call_id = invite.headers("Call-ID")[0]
    return tuple(m for m in result.messages if m.headers("Call-ID")[:1] == [call_id])
