"""Call records from the core (sans-IO, on the fake clock of ``harness``): answered and hung
up from either side, failed over, cancelled, rejected; and nothing at all when records are
off."""

from __future__ import annotations

from typing import Any

from harness import CARRIER, GW1, GW2, PBX, Net, answer, bye, invite, msgs

from pks.cdr.fields import Packed, expand
from pks.cdr.record import CallRecord, Recorder, pack
from pks.net import Address
from pks.sip import Message

DID = "33202020201"
OFFNET = "33123456789"


def shown_as(record: CallRecord, wall_offset: float, **how: Any) -> dict[str, Any]:
    """The record as sinks get it: packed by the writer thread, expanded for delivery."""
    return expand(Packed(*pack("id-1", record, wall_offset, **how)))


def first(sends: list, dest: Address) -> Message:
    found = msgs(sends, dest)
    assert found, f"nothing sent to {dest}"
    return found[0]


def recording(**config: object) -> tuple[Net, Recorder]:
    net = Net.make(**config)
    recorder = Recorder(capacity=100)
    net.proxy.calls.recorder = recorder
    return net, recorder


def taken(recorder: Recorder) -> list[CallRecord]:
    records = list(recorder.queue)
    recorder.queue.clear()
    return records


def answered_call(net: Net) -> Message:
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    net.deliver(answer(fwd, 180, "Ringing"), PBX)
    net.now += 2.0
    net.deliver(answer(fwd, 200, "OK", contact=f"sip:pbx@{PBX}"), PBX)
    return fwd


def test_answered_call_hung_up_by_the_callee() -> None:
    net, recorder = recording()
    start = net.now
    fwd = answered_call(net)
    assert taken(recorder) == []  # open until its BYE
    net.now += 30.0
    bye_ = bye(
        fwd,
        f"sip:caller@{CARRIER}",
        PBX,
        from_=f"<sip:{DID}@127.0.0.10>;tag=tt1",
        to=f"<sip:caller@{CARRIER.host}>;tag=ft1",
    )
    net.deliver(bye_, PBX)
    (record,) = taken(recorder)
    assert (record.status, record.code, record.reason, record.ended_by) == (
        "answered",
        200,
        "OK",
        "callee",
    )
    assert (record.start, record.answer, record.end) == (start, start + 2.0, start + 32.0)
    who = (record.caller, record.called, record.peer, record.setid)
    assert who == ("caller", DID, "carrier", 23)
    assert (record.call_id, record.from_tag, record.to_tag) == ("call-1", "ft1", "tt1")
    assert [uri for uri, _ in record.attempts] == [f"sip:{PBX.host}:{PBX.port}"]
    shown = shown_as(record, 1_700_000_000.0)
    assert shown["duration"] == 30.0 and shown["setup"] == 2.0
    assert shown["source"] == f"{CARRIER.host}:{CARRIER.port}"
    assert shown["attempts"][0]["code"] == 200
    assert shown["start"] == "2023-11-14T22:30:00.000Z"


def test_answered_call_hung_up_by_the_caller() -> None:
    net, recorder = recording()
    fwd = answered_call(net)
    bye_ = bye(
        fwd,
        f"sip:pbx@{PBX}",
        CARRIER,
        from_=f"<sip:caller@{CARRIER.host}>;tag=ft1",
        to=f"<sip:{DID}@127.0.0.10>;tag=tt1",
    )
    net.deliver(bye_, CARRIER)
    (record,) = taken(recorder)
    assert record.ended_by == "caller"


def test_failover_attempts_are_recorded_in_order() -> None:
    net, recorder = recording(fr_timer=2.0)
    out = net.deliver(invite(OFFNET, PBX), PBX)
    gw_a, gw_b = (GW1, GW2) if msgs(out, GW1) else (GW2, GW1)
    later = net.advance(2.5)
    second = first(later, gw_b)
    net.deliver(answer(second, 503, "Service Unavailable"), gw_b)
    (record,) = taken(recorder)
    assert record.status == "failed" and record.code == 408
    assert [uri for uri, _ in record.attempts] == [
        f"sip:{gw.host}:{gw.port}" for gw in (gw_a, gw_b)
    ]
    assert record.codes == [408, 503]
    assert record.peer == "pbx1" and record.setid == 21 and record.answer is None


def test_failed_over_then_answered() -> None:
    net, recorder = recording()
    out = net.deliver(invite(OFFNET, PBX), PBX)
    gw_a, gw_b = (GW1, GW2) if msgs(out, GW1) else (GW2, GW1)
    fwd2 = first(net.deliver(answer(first(out, gw_a), 503, "Down"), gw_a), gw_b)
    net.deliver(answer(fwd2, 200, "OK", contact=f"sip:gw@{gw_b}"), gw_b)
    net.proxy.calls.flush_records(net.now + 5)  # the proxy stops: open calls' records go
    (record,) = taken(recorder)
    assert (record.status, record.ended_by, record.codes) == ("answered", "stopped", [503, 200])
    assert shown_as(record, 0.0)["gateway"] == f"sip:{gw_b.host}:{gw_b.port}"


def test_cancelled_call() -> None:
    net, recorder = recording()
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    net.deliver(answer(fwd, 180, "Ringing"), PBX)
    out = net.deliver(invite(DID, CARRIER, method="CANCEL"), CARRIER)
    net.deliver(answer(first(out, PBX), 200, "OK"), PBX)
    net.deliver(answer(fwd, 487, "Request Terminated"), PBX)
    (record,) = taken(recorder)
    assert (record.status, record.code, record.reason, record.ended_by) == (
        "cancelled",
        487,
        "Request Terminated",
        "caller",
    )


def test_rejected_calls() -> None:
    net, recorder = recording()
    net.deliver(invite("999", PBX, call_id="c-404"), PBX)
    net.deliver(invite(DID, PBX, call_id="c-483", max_forwards=0), PBX)
    records = taken(recorder)
    assert [(r.call_id, r.status, r.code, r.ended_by) for r in records] == [
        ("c-404", "rejected", 404, "proxy"),
        ("c-483", "rejected", 483, "proxy"),
    ]
    assert records[0].called == "999" and records[0].peer is None
    shown = shown_as(records[0], 0.0, peer_of=lambda host, port: "pbx1")
    assert shown["peer"] == "pbx1" and shown["attempts"] == [] and shown["duration"] == 0


def test_the_queue_is_bounded_and_counts_what_it_drops() -> None:
    net, recorder = recording()
    recorder.capacity = 2
    for n in range(5):
        net.deliver(invite("999", PBX, call_id=f"c{n}", branch=f"z9hG4bKr{n}"), PBX)
    assert len(recorder.queue) == 2 and (recorder.made, recorder.dropped) == (5, 3)


def test_records_off_leave_calls_without_one() -> None:
    net = Net.make()
    answered_call(net)
    (call,) = net.proxy.calls._calls.values()
    assert call.cdr is None and net.proxy.calls.recorder is None


def test_each_seconds_text_is_the_time_it_names() -> None:
    import time

    from pks.cdr.fields import iso, seconds_text

    text = seconds_text("%Y-%m-%d %H:%M:%S", time.gmtime)
    for seconds in [*range(1_800_000_000, 1_800_005_000), 1_800_000_000]:  # past its bound
        assert text(seconds) == time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
    assert iso(1_800_000_000.25) == "2027-01-15T08:00:00.250Z"
