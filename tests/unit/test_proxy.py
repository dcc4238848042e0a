"""The sans-IO proxy spine, driven in memory: routing, relaying, failover, CANCEL, NAT, timers."""

from __future__ import annotations

from harness import CARRIER, GW1, GW2, PBX, PBX2, PUBLIC, Net, answer, bye, invite, msgs

from pks.forward.context import ServerCtx
from pks.net import Address
from pks.sip import Message, parse

DID = "33202020201"
OFFNET = "33123456789"


def first(sends: list, dest: Address) -> Message:
    found = msgs(sends, dest)
    assert found, f"nothing sent to {dest}"
    return found[0]


def statuses(sends: list, dest: Address) -> list[int]:
    return [m.status for m in msgs(sends, dest) if m.status is not None]


def bye_from_callee(fwd_invite: Message, caller_contact: str, branch: str = "z9hG4bKb1") -> str:
    return bye(
        fwd_invite,
        caller_contact,
        PBX,
        from_="<sip:33202020201@127.0.0.10>;tag=tt1",
        to=f"<sip:caller@{CARRIER.host}>;tag=ft1",
        branch=branch,
    )


def test_inbound_did_call_relayed_with_record_route() -> None:
    net = Net.make()
    out = net.deliver(invite(DID, CARRIER), CARRIER)
    assert statuses(out, CARRIER) == [100]
    fwd = first(out, PBX)
    assert fwd.method == "INVITE" and fwd.max_forwards == 69
    assert fwd.top_via.host == "127.0.0.10" and fwd.top_via.rfc3261
    assert [r.uri.host for r in fwd.record_routes] == ["127.0.0.10"]
    assert fwd.record_routes[0].uri.has_param("lr")
    assert fwd.body == b"v=0\r\n"
    ringing = net.deliver(answer(fwd, 180, "Ringing"), PBX)
    assert statuses(ringing, CARRIER) == [180]
    ok = net.deliver(answer(fwd, 200, "OK", contact=f"sip:pbx@{PBX}"), PBX)
    relayed = first(ok, CARRIER)
    assert relayed.status == 200 and len(relayed.vias) == 1
    assert relayed.vias[0].branch == "z9hG4bKc1"


def test_call_setup_and_bye_follow_record_route() -> None:
    net = Net.make()
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    net.deliver(answer(fwd, 200, "OK", contact=f"sip:pbx@{PBX}"), PBX)
    rr = fwd.values("record-route")[0].strip()
    ack = (
        f"ACK sip:pbx@{PBX} SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bKack1\r\n"
        f"Route: {rr}\r\nMax-Forwards: 70\r\nFrom: <sip:caller@{CARRIER.host}>;tag=ft1\r\n"
        f"To: <sip:{DID}@127.0.0.10>;tag=tt1\r\nCall-ID: call-1\r\nCSeq: 1 ACK\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    fwd_ack = first(net.deliver(ack, CARRIER), PBX)
    assert fwd_ack.method == "ACK" and fwd_ack.get("route") is None
    bye = net.deliver(bye_from_callee(fwd, f"sip:caller@{CARRIER}"), PBX)
    fwd_bye = first(bye, CARRIER)
    assert fwd_bye.method == "BYE" and fwd_bye.get("route") is None
    ok = net.deliver(answer(fwd_bye, 200, "OK"), CARRIER)
    assert statuses(ok, PBX) == [200]


def test_retransmitted_invite_reaches_callee_once() -> None:
    net = Net.make()
    net.deliver(invite(DID, CARRIER), CARRIER)
    again = net.deliver(invite(DID, CARRIER), CARRIER)
    assert msgs(again, PBX) == []
    assert statuses(again, CARRIER) == [100]


def gateway_order(sends: list) -> tuple[Address, Address]:
    """Set 21 is [gw2, gw1] (equal priorities: reverse load order, as Kamailio)."""
    one = GW1 if msgs(sends, GW1) else GW2
    return one, (GW2 if one == GW1 else GW1)


def test_failover_on_silence_then_on_503() -> None:
    net = Net.make(fr_timer=2.0)
    out = net.deliver(invite(OFFNET, PBX), PBX)
    gw_a, gw_b = gateway_order(out)
    first_try = first(out, gw_a)
    assert first_try.method == "INVITE"
    later = net.advance(2.5)
    second = first(later, gw_b)
    assert second.method == "INVITE" and second.top_via.branch != first_try.top_via.branch
    final = net.deliver(answer(second, 503, "Service Unavailable"), gw_b)
    # Best of (408 by timeout, 503): the lower class wins (RFC 3261 §16.7 step 6).
    assert statuses(final, PBX) == [408]
    assert first(final, gw_b).method == "ACK"


def test_every_gateway_503_gives_500_upstream() -> None:
    net = Net.make()
    out = net.deliver(invite(OFFNET, PBX), PBX)
    gw_a, gw_b = gateway_order(out)
    fwd2 = first(net.deliver(answer(first(out, gw_a), 503, "Down"), gw_a), gw_b)
    out = net.deliver(answer(fwd2, 503, "Down"), gw_b)
    assert statuses(out, PBX) == [500]  # a proxy never passes 503 upstream


def test_round_robin_alternates() -> None:
    net = Net.make()
    a = net.deliver(invite(OFFNET, PBX, call_id="a", branch="z9hG4bKa"), PBX)
    b = net.deliver(invite(OFFNET, PBX, call_id="b", branch="z9hG4bKb"), PBX)
    c = net.deliver(invite(OFFNET, PBX, call_id="c", branch="z9hG4bKc"), PBX)
    one, two = gateway_order(a)
    assert msgs(b, two) and not msgs(b, one)
    assert msgs(c, one) and not msgs(c, two)


def test_486_is_relayed_without_failover() -> None:
    net = Net.make()
    out = net.deliver(invite(OFFNET, PBX), PBX)
    gw_a, gw_b = gateway_order(out)
    out = net.deliver(answer(first(out, gw_a), 486, "Busy Here"), gw_a)
    assert statuses(out, PBX) == [486]
    assert msgs(out, gw_b) == []


def test_finished_transactions_keep_no_parsed_messages() -> None:
    # a context and its branch wait out Timers J/L/D/M for up to 32 s: once the final went
    # upstream they hold no parsed message (memory, and objects for the cyclic GC to walk)
    net = Net.make()
    out = net.deliver(invite(OFFNET, PBX), PBX)
    gw_a, _ = gateway_order(out)
    fwd = first(out, gw_a)
    busy = answer(fwd, 486, "Busy Here")
    net.deliver(busy, gw_a)
    ctxs = [h for h in net.proxy.relay.servers.values() if isinstance(h, ServerCtx)]
    branches = list(net.proxy.relay.branches.values())
    assert len(ctxs) == 1 and ctxs[0].final_sent and len(branches) == 1
    assert (ctxs[0].request, ctxs[0].base, ctxs[0].finals) == (None, None, [])
    assert branches[0].sent is None
    # the gateway repeats its 486: it still gets the ACK, and nothing more goes upstream
    again = net.deliver(busy, gw_a)
    assert first(again, gw_a).method == "ACK" and msgs(again, PBX) == []
    net.drain()
    assert net.proxy.transactions == 0


def test_all_gateways_fail_best_response() -> None:
    net = Net.make()
    out = net.deliver(invite(OFFNET, PBX), PBX)
    gw_a, gw_b = gateway_order(out)
    fwd2 = first(net.deliver(answer(first(out, gw_a), 503, "Down"), gw_a), gw_b)
    out = net.deliver(answer(fwd2, 408, "Request Timeout"), gw_b)
    assert statuses(out, PBX) == [408]


def test_cancel_during_ringing() -> None:
    net = Net.make()
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    net.deliver(answer(fwd, 180, "Ringing"), PBX)
    cancel = invite(DID, CARRIER, method="CANCEL").replace("CSeq: 1 CANCEL", "CSeq: 1 CANCEL")
    out = net.deliver(cancel, CARRIER)
    assert statuses(out, CARRIER) == [200]
    down = first(out, PBX)
    assert down.method == "CANCEL" and down.top_via.branch == fwd.top_via.branch
    net.deliver(answer(down, 200, "OK"), PBX)
    out = net.deliver(answer(fwd, 487, "Request Terminated"), PBX)
    assert statuses(out, CARRIER) == [487]
    assert first(out, PBX).method == "ACK"


def test_ringing_too_long_is_cancelled_with_408() -> None:
    net = Net.make(fr_inv_timer=30.0)
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    net.deliver(answer(fwd, 180, "Ringing"), PBX)
    out = net.advance(31.0)
    assert statuses(out, CARRIER)[:1] == [408]
    assert first(out, PBX).method == "CANCEL"


def test_refusals() -> None:
    net = Net.make()
    assert net.deliver(invite(DID, Address("127.0.0.99", 5060)), Address("127.0.0.99", 5060)) == []
    assert statuses(net.deliver(invite("999", CARRIER, branch="z9hG4bK2"), CARRIER), CARRIER) == [
        404
    ]
    # A provider dialing a number only dpid 2 knows: 404.
    assert statuses(net.deliver(invite(OFFNET, CARRIER, branch="z9hG4bK3"), CARRIER), CARRIER) == [
        404
    ]
    mf0 = invite(DID, CARRIER, branch="z9hG4bK4", max_forwards=0)
    assert statuses(net.deliver(mf0, CARRIER), CARRIER) == [483]
    no_user = invite(DID, CARRIER, branch="z9hG4bK5", ruri="sip:127.0.0.77")
    assert statuses(net.deliver(no_user, CARRIER), CARRIER) == [484]
    options = invite("x", CARRIER, branch="z9hG4bK6", method="OPTIONS", ruri="sip:127.0.0.10:5060")
    assert statuses(net.deliver(options, CARRIER), CARRIER) == [200]
    for branch in ("z9hG4bK7", "z9hG4bK8"):  # the second time from the cache of User-Agents
        scanner = invite(DID, CARRIER, branch=branch, extra="User-Agent: friendly-scanner\r\n")
        assert net.deliver(scanner, CARRIER) == []
    assert net.proxy.transactions == 0
    friendly = invite(DID, CARRIER, branch="z9hG4bK9", extra="User-Agent: PBX 1.0\r\n")
    for _ in range(2):  # the retransmission meets the cached verdict and the transaction
        assert statuses(net.deliver(friendly, CARRIER), CARRIER) == [100]


def test_unknown_source_rejected_when_configured() -> None:
    net = Net.make(reject_unknown=True)
    src = Address("127.0.0.99", 5060)
    assert statuses(net.deliver(invite(DID, src), src), src) == [403]


def test_on_net_call_uses_private_socket_and_double_record_route() -> None:
    net = Net.make()
    out = net.deliver(invite("33299999999", PBX), PBX)
    fwd = first(out, PBX2)
    sent = next(s for s in out if s.dest == PBX2)
    assert sent.socket.name == "ipbx"
    hosts = [(r.uri.host, r.uri.port, r.uri.has_param("r2")) for r in fwd.record_routes]
    assert hosts == [("127.0.0.11", 5070, True), ("127.0.0.10", 5060, True)]
    assert fwd.top_via.host == "127.0.0.11"


def test_private_contact_gets_alias_and_bye_reaches_real_source() -> None:
    net = Net.make()
    out = net.deliver(invite(DID, CARRIER, contact="sip:caller@192.168.1.10:5060"), CARRIER)
    fwd = first(out, PBX)
    contact = fwd.contacts[0].uri
    assert contact.param("alias") == f"{CARRIER.host}~{CARRIER.port}~1"
    net.deliver(answer(fwd, 200, "OK", contact=f"sip:pbx@{PBX}"), PBX)
    bye = net.deliver(bye_from_callee(fwd, contact.raw), PBX)
    fwd_bye = first(bye, CARRIER)
    assert "alias" not in (fwd_bye.ruri or "")
    assert fwd_bye.uri.host == "192.168.1.10"


def test_in_dialog_without_route_gets_403() -> None:
    net = Net.make()
    bye = invite(DID, CARRIER, method="BYE", to_tag="x1")
    assert statuses(net.deliver(bye, CARRIER), CARRIER) == [403]


def test_malformed_and_bad_requests_get_400_and_leave_no_state() -> None:
    net = Net.make()
    bad = invite(DID, CARRIER).replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS")
    assert statuses(net.deliver(bad, CARRIER), CARRIER) == [400]
    assert net.deliver(b"garbage\r\n\r\n", CARRIER) == []
    assert net.deliver(b"\x00\xff" * 50, CARRIER) == []
    assert net.proxy.transactions == 0


def test_every_transaction_ends() -> None:
    net = Net.make(fr_timer=1.0)
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    net.deliver(answer(fwd, 200, "OK", contact=f"sip:pbx@{PBX}"), PBX)
    net.deliver(invite(OFFNET, PBX, call_id="c2", branch="z9hG4bKz"), PBX)
    net.drain()
    assert net.proxy.transactions == 0
    # only the answered call (no BYE seen) is still counted, until call_max_duration
    assert len(net.proxy.calls) == 1
    assert net.proxy.next_deadline() == net.proxy.calls.deadline()


def test_response_for_unknown_branch_is_dropped() -> None:
    net = Net.make()
    req = parse(invite(DID, CARRIER).encode())
    assert net.deliver(answer(req, 180, "Ringing"), PBX) == []
    assert PUBLIC.name == "public"
