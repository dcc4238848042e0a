"""The edge, in memory: what a stranger or a forger gets from the core (nothing), and what
known peers still get (docs/security.md). The same attacks on the wire: tests/security."""

from __future__ import annotations

from harness import CARRIER, GW1, GW2, PBX, Net, answer, bye, invite, msgs, seed_rows

from pks.net import Address
from pks.route import Policy
from pks.route.rows import PeerRow
from pks.sip import Message

DID = "33202020201"
OFFNET = "33123456789"
STRANGER = Address("127.0.0.99", 5060)
FOREIGN = Address("127.0.0.98", 5060)  # a host in no table: the victim of a relay


def first(sends: list, dest: Address) -> Message:
    found = msgs(sends, dest)
    assert found, f"nothing sent to {dest}"
    return found[0]


def statuses(sends: list, dest: Address) -> list[int]:
    return [m.status for m in msgs(sends, dest) if m.status is not None]


def answered_call(net: Net) -> Message:
    """A carrier → PBX call, answered: the INVITE as the PBX received it."""
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    net.deliver(answer(fwd, 200, "OK", contact=f"sip:pbx@{PBX}"), PBX)
    return fwd


def in_dialog(
    method: str, route: str, src: Address, ruri: str, *, to_tag: str = "tt1", branch: str = "b9"
) -> str:
    return (
        f"{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK{branch}\r\n"
        f"Route: {route}\r\nMax-Forwards: 70\r\nFrom: <sip:caller@{CARRIER.host}>;tag=ft1\r\n"
        f"To: <sip:{DID}@127.0.0.10>;tag={to_tag}\r\nCall-ID: call-1\r\nCSeq: 2 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    )


# -- strangers ------------------------------------------------------------------------------


def test_a_stranger_gets_nothing_not_even_for_garbage() -> None:
    net = Net.make()
    for data in (invite(DID, STRANGER), b"\x00garbage" * 100, "OPTIONS sip:x SIP/2.0\r\n\r\n"):
        assert net.deliver(data, STRANGER) == []
    assert net.proxy.transactions == 0 and net.proxy.gate.dropped == 3
    assert net.proxy.stats["requests"] == 0  # nothing was parsed


def test_reject_mode_answers_403_never_larger_than_the_request() -> None:
    net = Net.make(reject_unknown=True)
    request = invite(DID, STRANGER)
    out = net.deliver(request, STRANGER)
    assert statuses(out, STRANGER) == [403] and len(out[0].data) <= len(request)
    assert net.deliver(b"garbage", STRANGER) == []
    tiny = "OPTIONS sip:x@127.0.0.10 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n"
    assert net.deliver(tiny, STRANGER) == []  # malformed: no answer at all


def test_a_gateway_is_known_without_an_address_row() -> None:
    net = Net.make()
    assert net.proxy.admits(GW1.host) and net.proxy.admits(PBX.host)
    assert not net.proxy.admits(STRANGER.host)


# -- open relay -----------------------------------------------------------------------------


def test_a_made_up_dialog_is_not_relayed() -> None:
    net = Net.make()
    forged = in_dialog(
        "INVITE", f"<sip:127.0.0.10;lr>, <sip:{FOREIGN};lr>", PBX, "sip:+19005550100@x.example"
    )
    assert statuses(net.deliver(forged, PBX), PBX) == [403]
    assert msgs(net.sent, FOREIGN) == [] and net.proxy.transactions == 0


def test_a_stolen_token_does_not_fit_another_dialog() -> None:
    net = Net.make()
    fwd = answered_call(net)
    our_route = fwd.values("record-route")[0].strip()
    other = in_dialog("BYE", our_route, PBX, f"sip:caller@{CARRIER}").replace("call-1", "call-2")
    assert statuses(net.deliver(other, PBX), PBX) == [403]


def test_a_dialog_through_us_works_from_both_sides() -> None:
    net = Net.make()
    fwd = answered_call(net)
    route = fwd.values("record-route")[0].strip()
    assert ";pks=" in route
    reinvite = in_dialog("INVITE", route, CARRIER, f"sip:pbx@{PBX}")
    assert first(net.deliver(reinvite, CARRIER), PBX).method == "INVITE"
    info = bye(
        fwd,
        f"sip:caller@{CARRIER}",
        PBX,
        from_=f"<sip:{DID}@127.0.0.10>;tag=tt1",
        to=f"<sip:caller@{CARRIER.host}>;tag=ft1",
        branch="z9hG4bKi1",
    ).replace("BYE", "INFO")
    assert first(net.deliver(info, PBX), CARRIER).method == "INFO"


def test_a_next_hop_that_is_not_a_known_peer_is_refused() -> None:
    net = Net.make()
    fwd = answered_call(net)
    route = fwd.values("record-route")[0].strip()
    out = net.deliver(in_dialog("BYE", f"{route}, <sip:{FOREIGN};lr>", CARRIER, "sip:x@h"), CARRIER)
    assert statuses(out, CARRIER) == [403] and msgs(out, FOREIGN) == []


def test_a_next_hop_that_is_us_is_a_loop() -> None:
    net = Net.make()
    fwd = answered_call(net)
    route = fwd.values("record-route")[0].strip()
    looped = f"{route}, <sip:127.0.0.1;maddr=127.0.0.10;lr>"
    held = net.proxy.transactions
    assert statuses(
        net.deliver(in_dialog("BYE", looped, CARRIER, "sip:x@h"), CARRIER), CARRIER
    ) == [482]
    assert net.proxy.transactions == held  # no new transaction


def test_an_alias_that_is_not_an_ip_literal_is_never_resolved() -> None:
    net = Net.make()
    fwd = answered_call(net)
    route = fwd.values("record-route")[0].strip()
    ruri = "sip:pbx@127.0.0.30;alias=localhost~45094~2"
    out = net.deliver(in_dialog("BYE", route, CARRIER, ruri), CARRIER)
    assert all(s.dest.host[0].isdigit() for s in out)
    assert first(out, PBX).method == "BYE"  # the alias ignored: the R-URI's own host


# -- forged responses -----------------------------------------------------------------------


def test_branches_are_unpredictable() -> None:
    net = Net.make()
    one = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX).top_via.branch or ""
    two = first(net.deliver(invite(DID, CARRIER, call_id="c2", branch="z9hG4bKc2"), CARRIER), PBX)
    other = two.top_via.branch or ""
    assert len(one.rsplit(".", 1)[1]) == 16 and one.rsplit(".", 1)[1] != other.rsplit(".", 1)[1]


def test_a_forged_response_from_elsewhere_changes_nothing() -> None:
    net = Net.make()
    fwd = first(net.deliver(invite(DID, CARRIER), CARRIER), PBX)
    busy = answer(fwd, 486, "Busy Here")
    assert net.deliver(busy, CARRIER) == []  # a known peer, but not where the INVITE went
    assert net.proxy.stats["response_wrong_source"] == 1
    ok = net.deliver(answer(fwd, 200, "OK", contact=f"sip:pbx@{PBX}"), PBX)
    assert statuses(ok, CARRIER) == [200]


def test_a_stray_2xx_goes_only_toward_a_known_peer() -> None:
    net = Net.make()
    stray = (
        "SIP/2.0 200 OK\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.10;branch={net.proxy.relay.prefix}1.00\r\n"
        f"Via: SIP/2.0/UDP {FOREIGN};branch=z9hG4bKv\r\n"
        "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: s\r\nCSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert net.deliver(stray, CARRIER) == []
    known = stray.replace(str(FOREIGN), str(PBX))
    assert [s.dest for s in net.deliver(known, CARRIER)] == [PBX]


# -- methods, user part, limits, memory -----------------------------------------------------


def test_out_of_dialog_methods_other_than_invite_get_405() -> None:
    net = Net.make()
    for n, method in enumerate(("SUBSCRIBE", "PUBLISH", "REGISTER", "MESSAGE", "OPTIONS")):
        out = net.deliver(invite(DID, PBX, method=method, branch=f"z9hG4bKm{n}"), PBX)
        (reply,) = msgs(out, PBX)
        assert reply.status == 405 and "INVITE" in (reply.get("allow") or b"").decode()
    assert msgs(net.sent, GW1) == msgs(net.sent, GW2) == []


def test_allowed_methods_are_routed() -> None:
    net = Net.make(policy=Policy(frozenset({"INVITE", "MESSAGE"})))
    out = net.deliver(invite(DID, CARRIER, method="MESSAGE"), CARRIER)
    assert first(out, PBX).method == "MESSAGE"


def test_options_to_us_is_answered() -> None:
    net = Net.make()
    ping = (
        f"OPTIONS sip:127.0.0.10:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {PBX};branch=z9hG4bKo\r\n"
        f"From: <sip:pbx@{PBX.host}>;tag=1\r\nTo: <sip:127.0.0.10>\r\nCall-ID: o\r\n"
        "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    assert statuses(net.deliver(ping, PBX), PBX) == [200]


def test_a_long_user_part_gets_484_before_any_lookup() -> None:
    net = Net.make()
    assert statuses(net.deliver(invite("4" * 65, PBX), PBX), PBX) == [484]
    assert statuses(net.deliver(invite("4" * 64, PBX, branch="z9hG4bKn"), PBX), PBX) == [404]


def test_a_full_proxy_answers_503_with_retry_after() -> None:
    net = Net.make(max_transactions=1)
    net.deliver(invite(DID, CARRIER), CARRIER)  # waits for an answer: a server and a client
    out = net.deliver(invite(DID, CARRIER, call_id="c2", branch="z9hG4bKc2"), CARRIER)
    (reply,) = msgs(out, CARRIER)
    assert reply.status == 503 and reply.get("retry-after") == b"5"
    assert net.proxy.transactions == 2 and net.proxy.relay.waiting == 1


def test_answered_requests_linger_without_holding_a_slot() -> None:
    """An answered call's transactions stay for their retransmission timers (32 s on UDP),
    and must not count: at a few hundred calls/s they would fill any cap in seconds."""
    net = Net.make(max_transactions=1)
    answered_call(net)
    assert net.proxy.transactions >= 2 and net.proxy.relay.waiting == 0
    out = net.deliver(invite(DID, CARRIER, call_id="c2", branch="z9hG4bKc2"), CARRIER)
    assert 503 not in statuses(out, CARRIER)


def test_a_bye_with_a_made_up_to_tag_frees_no_slot() -> None:
    rows = seed_rows(peers=(PeerRow(1, "provider", "carrier", "carrier", 21, max_calls=1),))
    net = Net.make(rows)
    fwd = answered_call(net)
    route = fwd.values("record-route")[0].strip()
    assert net.proxy.calls.peer_count("carrier") == 1
    fake = in_dialog("BYE", route, CARRIER, f"sip:pbx@{PBX}", to_tag="nope")
    net.deliver(fake, CARRIER)
    assert net.proxy.calls.peer_count("carrier") == 1
    again = net.deliver(invite(DID, CARRIER, call_id="c2", branch="z9hG4bKc2"), CARRIER)
    assert statuses(again, CARRIER) == [503]
    real = in_dialog("BYE", route, CARRIER, f"sip:pbx@{PBX}", branch="b10")
    first(net.deliver(real, CARRIER), PBX)
    assert net.proxy.calls.peer_count("carrier") == 0


def test_the_limit_is_a_route_stage() -> None:
    from pks.route import route

    rows = seed_rows(peers=(PeerRow(1, "provider", "carrier", "carrier", 21, max_calls=1),))
    net = Net.make(rows)
    snap = net.proxy.snapshot
    assert snap is not None
    full = route(snap, CARRIER.host, CARRIER.port, DID, peer_calls=lambda tag: 1)
    assert getattr(full, "code", None) == 503


def test_remembered_dialog_tokens_stay_right_and_bounded() -> None:
    from pks.forward.dialog import TOKENS_KEPT
    from pks.forward.request import dialog_token

    gate = Net.make().proxy.dialogs
    dialogs = [(f"call-{n}", f"tag-{n % 7}") for n in range(3 * TOKENS_KEPT)]
    for call_id, tag in dialogs + dialogs[-10:] + dialogs[:10]:  # recent ones, then old ones
        assert gate.token(call_id, tag) == dialog_token(gate.secret, call_id, tag)
    assert len(gate._tokens) + len(gate._old) <= 2 * TOKENS_KEPT
