"""Gateway health (probing, passive detection, states) and call limits, driven in memory."""

from __future__ import annotations

from harness import CARRIER, GW1, GW2, PBX, PBX2, PRIVATE, Net, answer, bye, invite, msgs, seed_rows

from pks.health.probe import AliveCodes, ProbeConfig
from pks.net import Address
from pks.route.rows import DispatcherRow, PeerRow
from pks.route.snapshot import build_snapshot
from pks.sip import Message

OFFNET = "33123456789"
DID = "33202020201"


def probing_net(rows=None, **config) -> Net:
    config.setdefault("probe", ProbeConfig(interval=10.0, timeout=4.0))
    config.setdefault("probing_threshold", 2)
    config.setdefault("inactive_threshold", 2)
    net = Net.make(rows, **config)
    net.sent.extend(net.proxy.start(net.now))
    return net


def options_to(sends, dest: Address) -> list[Message]:
    return [m for m in msgs(sends, dest) if m.method == "OPTIONS"]


def state(net: Net, host: Address, setid: int = 21) -> dict:
    for dest in net.proxy.gateways:
        if dest.key[0] == setid and dest.target.host == host.host:
            return dest.describe()
    raise AssertionError(f"no destination {host} in set {setid}")


def answer_probes(net: Net, sends, *alive: Address, code: int = 200) -> None:
    for dest in alive:
        for probe in options_to(sends, dest):
            net.deliver(answer(probe, code, "OK"), dest)


def test_every_destination_has_a_state_from_load() -> None:
    net = Net.make()
    assert len(net.proxy.gateways) == 4
    assert state(net, GW1)["state"] == "active" and state(net, GW1)["flags"] == "AX"


def test_probe_shape_and_identity() -> None:
    net = probing_net()
    out = net.advance(0)
    probe = options_to(out, GW1)[0]
    assert probe.uri.host == GW1.host and probe.to.uri.host == GW1.host
    assert probe.from_.uri.user == "pks" and probe.from_tag
    assert probe.cseq.method == "OPTIONS" and probe.get("contact") is None
    # pbx2 is reached through the ipbx socket: its probe leaves from there
    assert [s.socket for s in out if s.dest == PBX2] == [PRIVATE]
    assert {s.dest for s in out} == {GW1, GW2, PBX, PBX2}


def test_silent_gateway_goes_inactive_after_threshold_and_comes_back() -> None:
    net = probing_net()
    answer_probes(net, net.advance(0), GW1, PBX, PBX2)
    assert state(net, GW1)["latency"]["samples"] == 1
    net.advance(4.0)  # GW2's first probe times out
    assert state(net, GW2)["state"] == "probing" and state(net, GW2)["flags"] == "TX"
    answer_probes(net, net.advance(6.0), GW1, PBX, PBX2)
    net.advance(4.0)
    assert state(net, GW2)["state"] == "inactive"
    assert state(net, GW2)["last_code"] == 408
    for i in range(4):  # no call goes to an inactive gateway
        out = net.deliver(invite(OFFNET, PBX, call_id=f"c{i}", branch=f"z9hG4bK{i}"), PBX)
        assert msgs(out, GW2) == [] and len(msgs(out, GW1)) == 1
    answer_probes(net, net.advance(6.0), GW1, GW2, PBX, PBX2)
    assert state(net, GW2)["state"] == "inactive"  # one answer of the two needed
    answer_probes(net, net.advance(10.0), GW1, GW2, PBX, PBX2)
    assert state(net, GW2)["state"] == "active"


def test_refusing_options_is_alive_but_500_is_not() -> None:
    net = probing_net(probe=ProbeConfig(interval=10.0, timeout=4.0, alive=AliveCodes()))
    out = net.advance(0)
    answer_probes(net, out, GW1, code=405)
    answer_probes(net, out, GW2, code=500)
    assert state(net, GW1)["state"] == "active" and state(net, GW1)["last_code"] == 405
    assert state(net, GW2)["state"] == "probing" and state(net, GW2)["last_code"] == 500


def test_all_gateways_inactive_gives_503_at_once() -> None:
    net = probing_net()
    net.proxy.gateways.set_state(21, None, "inactive")
    out = net.deliver(invite(OFFNET, PBX), PBX)
    assert [m.status for m in msgs(out, PBX)] == [503]
    assert net.proxy.transactions == 0


def test_disabled_is_never_probed_nor_changed() -> None:
    net = probing_net()
    assert net.proxy.gateways.set_state(21, f"sip:{GW2.host}:{GW2.port}", "disabled") == 1
    for _ in range(3):
        assert options_to(net.advance(10.0), GW2) == []
    assert state(net, GW2)["state"] == "disabled"


def test_paused_probing_sends_nothing() -> None:
    net = probing_net()
    net.proxy.gateways.ping_active = False
    assert net.advance(30.0) == []


def test_probing_mode_inactive_probes_only_inactive_ones() -> None:
    net = probing_net(probe=ProbeConfig(interval=10.0, timeout=4.0, mode="inactive"))
    net.proxy.gateways.set_state(21, f"sip:{GW2.host}:{GW2.port}", "i")
    out = net.advance(0)
    assert {s.dest for s in out} == {GW2}


def test_ping_from_attr_and_ping_off_attr() -> None:
    rows = seed_rows(
        dispatcher=(
            DispatcherRow(
                2, 21, f"sip:{GW1.host}:{GW1.port}", 0, 0, "ping_from=sip:hc@pks.example", ""
            ),
            DispatcherRow(3, 21, f"sip:{GW2.host}:{GW2.port}", 0, 0, "ping=0", ""),
        )
    )
    net = probing_net(rows)
    out = net.advance(0)
    assert options_to(out, GW1)[0].from_.uri.host == "pks.example"
    assert options_to(out, GW2) == []


def test_timeout_on_a_real_call_marks_the_gateway_down() -> None:
    net = probing_net(fr_timer=2.0)
    net.proxy.gateways.ping_active = False
    out = net.deliver(invite(OFFNET, PBX), PBX)
    first = msgs(out, GW1) or msgs(out, GW2)
    silent = GW1 if msgs(out, GW1) else GW2
    assert first
    net.advance(2.0)  # fr_timer: no answer at all from the first gateway
    assert state(net, silent)["state"] == "inactive"


def test_reload_keeps_state_of_unchanged_rows_only() -> None:
    net = probing_net()
    net.proxy.gateways.set_state(21, None, "inactive")
    rows = seed_rows()
    changed = (
        rows.dispatcher[0],
        rows.dispatcher[1],
        DispatcherRow(3, 21, f"sip:{GW2.host}:{GW2.port}", 0, 5, "", "gw2"),
        rows.dispatcher[3],
    )
    net.proxy.snapshot = build_snapshot(seed_rows(dispatcher=changed))
    assert state(net, GW1)["state"] == "inactive"
    assert state(net, GW2)["state"] == "active"


def test_maxload_sends_the_next_call_to_the_next_gateway_then_503() -> None:
    rows = seed_rows(
        dispatcher=(
            DispatcherRow(2, 21, f"sip:{GW1.host}:{GW1.port}", 0, 0, "maxload=1", ""),
            DispatcherRow(3, 21, f"sip:{GW2.host}:{GW2.port}", 0, 0, "maxload=1", ""),
        )
    )
    net = Net.make(rows)
    first = net.deliver(invite(OFFNET, PBX, call_id="a", branch="z9hG4bKa"), PBX)
    second = net.deliver(invite(OFFNET, PBX, call_id="b", branch="z9hG4bKb"), PBX)
    assert {s.dest for s in first + second if s.dest != PBX} == {GW1, GW2}
    third = net.deliver(invite(OFFNET, PBX, call_id="c", branch="z9hG4bKc"), PBX)
    assert [m.status for m in msgs(third, PBX)] == [503]
    counts = net.proxy.limit_counts()
    assert sorted(g["calls"] for g in counts["gateways"]) == [1, 1]
    # the first call fails: its slot is free again
    fwd = (msgs(first, GW1) or msgs(first, GW2))[0]
    dest = GW1 if msgs(first, GW1) else GW2
    net.deliver(answer(fwd, 486, "Busy Here"), dest)
    fourth = net.deliver(invite(OFFNET, PBX, call_id="d", branch="z9hG4bKd"), PBX)
    assert len(msgs(fourth, dest)) == 1


def test_peer_limit_answers_503_until_a_bye() -> None:
    rows = seed_rows(peers=(PeerRow(1, "customer", "pbx one", "pbx1", 21, max_calls=1),))
    net = Net.make(rows)
    out = net.deliver(invite(OFFNET, PBX, call_id="a", branch="z9hG4bKa"), PBX)
    fwd = (msgs(out, GW1) or msgs(out, GW2))[0]
    gw = GW1 if msgs(out, GW1) else GW2
    net.deliver(answer(fwd, 200, "OK", contact=f"sip:gw@{gw}"), gw)
    refused = net.deliver(invite(OFFNET, PBX, call_id="b", branch="z9hG4bKb"), PBX)
    assert [m.status for m in msgs(refused, PBX)] == [503]
    assert net.proxy.limit_counts()["peers"]["pbx1"] == {"calls": 1, "max_calls": 1}
    other = net.deliver(invite(DID, CARRIER, call_id="x", branch="z9hG4bKx"), CARRIER)
    assert msgs(other, PBX)  # another peer is not limited
    hang_up = bye(
        fwd,
        f"sip:gw@{gw}",
        PBX,
        from_=f"<sip:caller@{PBX.host}>;tag=ft1",
        to=f"<sip:{OFFNET}@127.0.0.10>;tag=tt1",
        call_id="a",
        branch="z9hG4bKbye",
        cseq=2,
    )
    net.deliver(hang_up, PBX)
    again = net.deliver(invite(OFFNET, PBX, call_id="c", branch="z9hG4bKc"), PBX)
    assert msgs(again, GW1) or msgs(again, GW2)


def test_named_gateway_expands_to_its_addresses_and_fails_over_between_them() -> None:
    from pks.dns.cache import Resolution, dns_key

    rows = seed_rows(dispatcher=(DispatcherRow(2, 21, "sip:gw.test", 0, 0, "", ""),))
    net = Net.make(rows, fr_timer=1.0)
    named = net.proxy.snapshot.dispatcher.sets[21].targets[0]
    out = net.deliver(invite(OFFNET, PBX, call_id="n1", branch="z9hG4bKn1"), PBX)
    # not resolved: like a dead one (a final at once goes without a 100 Trying before it)
    assert [m.status for m in msgs(out, PBX)] == [503]
    assert dns_key(named) in net.proxy.dns.wanted
    net.proxy.dns.put(
        dns_key(named), Resolution(((GW1.host, GW1.port), (GW2.host, GW2.port)), net.now + 30)
    )
    out = net.deliver(invite(OFFNET, PBX, call_id="n2", branch="z9hG4bKn2"), PBX)
    assert len(msgs(out, GW1)) == 1
    out = net.advance(1.0)  # GW1 silent: the next SRV target
    assert len([m for m in msgs(out, GW2) if m.method == "INVITE"]) == 1
    net.advance(40.0)  # past the TTL: the name is wanted again and calls fail over
    assert net.proxy.dns.expand(named, net.now) == ()
