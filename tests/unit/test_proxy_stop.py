"""Stopping the core (``Proxy.drain``, ``Proxy.shutdown``) and taking over the unanswered
INVITEs of a dead worker (``Relay.adopt_lost``): what goes on the wire."""

from __future__ import annotations

from harness import CARRIER, PBX, PUBLIC, Net, answer, bye, invite, msgs

from pks.forward import stopping
from pks.net import Address, Inbound, Proto
from pks.sip import Message, parse

DID = "33202020201"


def first(sends: list, dest: Address) -> Message:
    found = msgs(sends, dest)
    assert found, f"nothing sent to {dest}"
    return found[0]


def statuses(sends: list, dest: Address) -> list[int]:
    return [m.status or 0 for m in msgs(sends, dest) if m.method is None]


def test_draining_refuses_new_calls_and_relays_the_ones_in_flight() -> None:
    net = Net.make()
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    net.deliver(answer(fwd, 180, "Ringing"), PBX)
    net.proxy.drain(net.now)
    assert net.proxy.in_flight == 1

    refused = net.deliver(invite(DID, CARRIER, branch="z9hG4bKnew", call_id="c2"), CARRIER)
    assert statuses(refused, CARRIER) == [503]
    assert first(refused, CARRIER).get("retry-after") == b"5"
    assert msgs(refused, PBX) == []  # never routed

    out = net.deliver(answer(fwd, 200, "OK", contact=f"sip:callee@{PBX}"), PBX)
    assert statuses(out, CARRIER) == [200]
    assert net.proxy.in_flight == 0
    # in-dialog requests still pass while draining
    ok = parse(net.sent[-1].data)
    out = net.deliver(
        bye(
            fwd,
            f"sip:callee@{PBX}",
            CARRIER,
            from_=ok.get("from").decode(),
            to=ok.get("to").decode(),
        ),
        CARRIER,
    )
    assert first(out, PBX).method == "BYE"
    assert net.proxy.stats["refused_draining"] == 1


def test_shutdown_cancels_ringing_branches_and_answers_their_callers_503() -> None:
    net = Net.make()
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    net.deliver(answer(fwd, 180, "Ringing"), PBX)
    out = net.proxy.shutdown(net.now)
    net.sent.extend(out)
    assert statuses(out, CARRIER) == [503]
    assert first(out, CARRIER).get("retry-after") == b"5"
    cancel = first(out, PBX)
    assert cancel.method == "CANCEL" and cancel.top_via.branch == fwd.top_via.branch
    assert net.proxy.in_flight == 0 and net.proxy.settling == 2  # the INVITE and its CANCEL
    net.deliver(answer(cancel, 200, "OK"), PBX)
    out = net.deliver(answer(fwd, 487, "Request Terminated"), PBX)
    assert first(out, PBX).method == "ACK"
    assert statuses(out, CARRIER) == []  # the caller has its 503 already
    assert net.proxy.settling == 0
    assert len(net.proxy.calls) == 0


def test_shutdown_before_any_provisional_cancels_when_one_arrives() -> None:
    net = Net.make()
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    out = net.proxy.shutdown(net.now)
    assert statuses(out, CARRIER) == [503]
    assert msgs(out, PBX) == []  # no CANCEL before a provisional (RFC 3261 §9.1)
    out = net.deliver(answer(fwd, 180, "Ringing"), PBX)
    assert first(out, PBX).method == "CANCEL"
    assert statuses(out, CARRIER) == []


def test_a_dead_workers_invite_is_answered_500_and_its_branch_cancelled() -> None:
    """What the replacement worker does with its predecessor's journal."""
    dead = Net.make()
    raw = invite(DID, CARRIER).encode()
    fwd = first(dead.deliver(raw, CARRIER), PBX)
    dead.deliver(answer(fwd, 180, "Ringing"), PBX)

    heir = Net.make()
    request = parse(raw)
    key = (request.top_via.branch or "", request.top_via.sent_by, "INVITE")
    out: list = []
    inbound = Inbound(PUBLIC, CARRIER, None)
    stopping.adopt_lost(
        heir.proxy.relay, key, request, inbound, fwd, PBX, Proto.UDP, PUBLIC, heir.now, out
    )
    heir.sent.extend(out)
    assert statuses(out, CARRIER) == [500]
    cancel = first(out, PBX)
    assert cancel.method == "CANCEL" and cancel.top_via.branch == fwd.top_via.branch
    # the caller retransmits its INVITE: the 500 again, never a new call
    again = heir.deliver(raw, CARRIER)
    assert statuses(again, CARRIER) == [500] and msgs(again, PBX) == []
    # the gateway's 487 is ACKed; the caller's ACK is absorbed
    heir.deliver(answer(cancel, 200, "OK"), PBX)
    out = heir.deliver(answer(fwd, 487, "Request Terminated"), PBX)
    assert first(out, PBX).method == "ACK" and statuses(out, CARRIER) == []
    five = first(again, CARRIER)
    ack = invite(DID, CARRIER, method="ACK", to_tag=five.to_tag)
    assert heir.deliver(ack, CARRIER) == []
    heir.drain()
    assert heir.proxy.transactions == 0
