"""Worker processes' shared state and handoff, driven in memory: two proxies ("workers") on
one shared store, each as its worker process would wire it (pks.workers.node), no sockets
except the loopback channel test."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from harness import GW1, GW2, PBX, PRIVATE, PUBLIC, PUBLIC_TCP, Net, answer, invite, msgs
from harness import seed_rows as rows_of

from pks.config import MAX_WORKERS, ConfigError, Settings
from pks.forward.calls import CallTable
from pks.health.state import GatewayStates
from pks.net import Address, Inbound
from pks.proxy import CoreConfig, Proxy
from pks.route.rows import DispatcherRow, PeerRow, SetRow, TableRows
from pks.route.snapshot import build_snapshot
from pks.sip import parse
from pks.workers.handoff import (
    Channel,
    Router,
    branch_owner,
    branch_prefix,
    callid_owner,
    mix_call_id,
    pack_message,
    unpack_message,
)
from pks.workers.journal import Journal, read_journal
from pks.workers.shared import GatewayShare, PeerShare, SharedStore, share_selection

OFFNET = "33123456789"


@pytest.fixture
def store_path(tmp_path: Path) -> str:
    return SharedStore.create(2, str(tmp_path))


def worker(path: str, index: int, rows: TableRows | None = None) -> Net:
    """What WorkerNode.start does to a worker's proxy, without the I/O."""
    store = SharedStore(path, index)
    snapshot = build_snapshot(rows or rows_of())
    share_selection(snapshot, store)
    proxy = Proxy(
        (PUBLIC, PUBLIC_TCP, PRIVATE),
        CoreConfig(),
        snapshot,
        branch_prefix=branch_prefix(index, "ab12"),
    )
    proxy.gateways.share = GatewayShare(store)
    proxy.snapshot = proxy.snapshot
    proxy.calls.share = PeerShare(store)
    return Net(proxy)


def gateway_of(out) -> Address:
    (dest,) = {s.dest for s in out if s.dest in (GW1, GW2)}
    return dest


# -- the store ------------------------------------------------------------------------------


def test_slots_are_the_same_in_every_view(store_path: str) -> None:
    a, b = SharedStore(store_path, 0), SharedStore(store_path, 1)
    assert a.workers == b.workers == 2 and a.token == b.token and len(a.token) == 16
    word = a.slot(("rr", 21), initial=7)
    assert b.slot(("rr", 21), initial=99) == word and b.get(word) == 7
    b.put(word, 3)
    assert a.get(word) == 3
    assert a.slot(("rr", 22)) != word


def test_owned_slots_sum_and_a_restarted_worker_starts_from_zero(store_path: str) -> None:
    a, b = SharedStore(store_path, 0), SharedStore(store_path, 1)
    a.put(a.own_slot(("peer", "x")), 2)
    b.put(b.own_slot(("peer", "x")), 3)
    assert a.total(a.all_slots(("peer", "x"))) == 5
    reborn = SharedStore(store_path, 1)  # worker 1's successor: none of those calls
    assert reborn.get(reborn.own_slot(("peer", "x"))) == 0
    assert a.total(a.all_slots(("peer", "x"))) == 2


def test_store_refuses_a_foreign_file_and_a_bad_index(tmp_path: Path, store_path: str) -> None:
    other = tmp_path / "other"
    other.write_bytes(bytes(SharedStore(store_path, 0)._map.size()))
    with pytest.raises(ValueError, match="not a pks shared store"):
        SharedStore(other, 0)
    with pytest.raises(ValueError, match=r"out of 0\.\.1"):
        SharedStore(store_path, 2)


# -- routing state across workers ------------------------------------------------------------


def test_round_robin_is_instance_wide(store_path: str) -> None:
    w0, w1 = worker(store_path, 0), worker(store_path, 1)
    seen = []
    for n in range(10):
        net = (w0, w1)[n % 3 % 2]  # an uneven mix of workers: 0, 1, 0, 0, 1, 0, ...
        seen.append(
            gateway_of(net.deliver(invite(OFFNET, PBX, call_id=f"c{n}", branch=f"z9hG4bK{n}"), PBX))
        )
    assert seen == [seen[0], seen[1]] * 5 and {seen[0], seen[1]} == {GW1, GW2}


def test_weighted_credits_are_instance_wide(store_path: str) -> None:
    rows = rows_of(
        dispatcher=(
            DispatcherRow(2, 21, f"sip:{GW1.host}:{GW1.port}", 0, 0, "weight=3", ""),
            DispatcherRow(3, 21, f"sip:{GW2.host}:{GW2.port}", 0, 0, "weight=1", ""),
        ),
        sets=(SetRow(21, "weighted"),),
    )
    w0, w1 = worker(store_path, 0, rows), worker(store_path, 1, rows)
    seen = [
        gateway_of(
            (w0, w1)[n % 2].deliver(invite(OFFNET, PBX, call_id=f"c{n}", branch=f"z9hG4bK{n}"), PBX)
        )
        for n in range(8)
    ]
    assert seen.count(GW1) == 6 and seen.count(GW2) == 2


def test_operator_state_reaches_every_worker(store_path: str) -> None:
    w0, w1 = worker(store_path, 0), worker(store_path, 1)
    assert w0.proxy.gateways.set_state(21, f"sip:{GW1.host}:{GW1.port}", "inactive") == 1
    for n in range(3):
        out = w1.deliver(invite(OFFNET, PBX, call_id=f"c{n}", branch=f"z9hG4bK{n}"), PBX)
        assert gateway_of(out) == GW2
    (gw1,) = [t for t in w1.proxy.snapshot.dispatcher.sets[21].targets if t.host == GW1.host]
    assert w1.proxy.gateways.describe(gw1)["state"] == "inactive"


def test_a_reload_keeps_the_shared_state_of_unchanged_rows(store_path: str) -> None:
    w0, w1 = worker(store_path, 0), worker(store_path, 1)
    w0.proxy.gateways.set_state(21, f"sip:{GW1.host}:{GW1.port}", "disabled")
    w1.proxy.snapshot = build_snapshot(rows_of())  # same rows: the state stays
    states = {s.key[1]: s.state for s in w1.proxy.gateways if s.key[0] == 21}
    assert states[f"sip:{GW1.host}:{GW1.port}"] == "disabled"
    reborn = worker(store_path, 1)  # a restarted worker adopts the live state too
    states = {s.key[1]: s.state for s in reborn.proxy.gateways if s.key[0] == 21}
    assert states[f"sip:{GW1.host}:{GW1.port}"] == "disabled"


def test_maxload_counts_calls_of_every_worker(store_path: str) -> None:
    rows = rows_of(
        dispatcher=(
            DispatcherRow(2, 21, f"sip:{GW1.host}:{GW1.port}", 0, 0, "maxload=1", ""),
            DispatcherRow(3, 21, f"sip:{GW2.host}:{GW2.port}", 0, 0, "maxload=1", ""),
        )
    )
    w0, w1 = worker(store_path, 0, rows), worker(store_path, 1, rows)
    first = w0.deliver(invite(OFFNET, PBX, call_id="a", branch="z9hG4bKa"), PBX)
    second = w1.deliver(invite(OFFNET, PBX, call_id="b", branch="z9hG4bKb"), PBX)
    assert {gateway_of(first), gateway_of(second)} == {GW1, GW2}
    third = w0.deliver(invite(OFFNET, PBX, call_id="c", branch="z9hG4bKc"), PBX)
    assert [m.status for m in msgs(third, PBX)] == [503]
    assert sorted(g["calls"] for g in w0.proxy.limit_counts()["gateways"]) == [1, 1]
    # worker 1's call fails: its gateway takes a call again, in worker 0
    fwd = msgs(second, gateway_of(second))[0]
    w1.deliver(answer(fwd, 486, "Busy Here"), gateway_of(second))
    fourth = w0.deliver(invite(OFFNET, PBX, call_id="d", branch="z9hG4bKd"), PBX)
    assert gateway_of(fourth) == gateway_of(second)


def test_peer_limit_counts_calls_of_every_worker(store_path: str) -> None:
    rows = rows_of(peers=(PeerRow(1, "customer", "pbx one", "pbx1", 21, max_calls=1),))
    w0, w1 = worker(store_path, 0, rows), worker(store_path, 1, rows)
    out = w0.deliver(invite(OFFNET, PBX, call_id="a", branch="z9hG4bKa"), PBX)
    assert gateway_of(out)
    refused = w1.deliver(invite(OFFNET, PBX, call_id="b", branch="z9hG4bKb"), PBX)
    assert [m.status for m in msgs(refused, PBX)] == [503]
    fwd = msgs(out, gateway_of(out))[0]
    w0.deliver(answer(fwd, 480, "Unavailable"), gateway_of(out))  # call over
    again = w1.deliver(invite(OFFNET, PBX, call_id="c", branch="z9hG4bKc"), PBX)
    assert gateway_of(again)


def test_a_bye_for_a_call_held_elsewhere_is_passed_on(store_path: str) -> None:
    missed = []
    share = PeerShare(SharedStore(store_path, 0), lambda *dialog: missed.append(dialog))
    table = CallTable(GatewayStates())
    table.share = share
    call = table.open("x", "ft", "pbx1", "10.0.0.1")
    call.to_tag = "tt"  # answered
    table.bye("other", "a", "b", "10.0.0.1")
    assert missed == [("other", "a", "b", "10.0.0.1")]
    table.bye("x", "tt", "ft", "10.0.0.1")  # the callee's BYE: tags swapped
    assert not call.open and missed == [("other", "a", "b", "10.0.0.1")]
    assert share.count("pbx1") == 0


# -- ownership and the channel ----------------------------------------------------------------


def test_branch_prefix_names_the_worker() -> None:
    w1 = branch_prefix(1, "ab12")
    assert w1 == "z9hG4bKpksW01ab12"
    response = f"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch={w1}7\r\n\r\n".encode()
    assert branch_owner(response) == 1
    assert branch_owner(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKpks123456\r\n") is None
    assert branch_owner(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKpksWzz\r\n") is None


def test_call_id_owner_reads_every_spelling() -> None:
    long = b"INVITE sip:x SIP/2.0\r\nVia: v\r\nCall-ID: abc@h\r\n\r\n"
    compact = b"INVITE sip:x SIP/2.0\r\nv: v\r\ni:abc@h \r\n\r\n"
    lower = b"CANCEL sip:x SIP/2.0\r\nVia: v\r\ncall-id :  abc@h\r\n\r\n"
    owners = {callid_owner(m, 7) for m in (long, compact, lower)}
    assert len(owners) == 1 and owners.pop() in range(7)
    assert callid_owner(b"INVITE sip:x SIP/2.0\r\nVia: v\r\n\r\n", 7) is None
    spread = {callid_owner(f"X\r\nCall-ID: {n}\r\n".encode(), 2) for n in range(50)}
    assert spread == {0, 1}


def test_call_id_owner_reads_the_header_section_only() -> None:
    last = b"BYE sip:x SIP/2.0\r\nVia: v\r\nCall-ID:\tabc@h\r\n\r\nbody"
    assert callid_owner(last, 1000) == mix_call_id(b"abc@h") % 1000
    # a Call-ID line in the body (message/sipfrag) is not the message's Call-ID
    body = b"MESSAGE sip:x SIP/2.0\r\nVia: v\r\n\r\nSIP/2.0 200 OK\r\nCall-ID: other\r\n"
    assert callid_owner(body, 1000) is None
    compact_then_body = b"BYE sip:x SIP/2.0\r\ni: abc@h\r\n\r\nCall-ID: other\r\n"
    assert callid_owner(compact_then_body, 1000) == mix_call_id(b"abc@h") % 1000


def test_handoff_packing_round_trips() -> None:
    data = pack_message(b"T" * 16, 2, Address("::1", 5062), b"SIP/2.0 180 Ringing\r\n\r\n")
    assert data[:17] == b"T" * 16 + b"M"
    assert unpack_message(memoryview(data)[17:]) == (
        2,
        Address("::1", 5062),
        b"SIP/2.0 180 Ringing\r\n\r\n",
    )


def test_the_journal_keeps_what_is_live_through_rewrites(tmp_path: Path) -> None:
    """Records are stored in the map without a close (a SIGKILL loses nothing), a record
    that does not fit rewrites the file with the live ones, and a zero length ends it."""
    path = str(tmp_path / "journal.0")
    journal = Journal(path, capacity=4096)
    journal.open()
    assert os.path.getsize(path) == 4096
    request = parse(invite(OFFNET, PBX).encode())
    calls = []
    for n in range(40):  # several rewrites: each INVITE's records are over 1 kB
        key = ("cid", str(n), "INVITE")
        journal.opened(key, request, Inbound(PUBLIC, Address("192.0.2.10", 5060)))
        sent = b"INVITE sent %d" % n
        journal.branched(key, sent, Address("192.0.2.20", 5060), PUBLIC.proto, PUBLIC)
        if n % 2:
            journal.answered(key)
            call = CallTable(GatewayStates()).open(f"call-{n}", "ft", "pbx", "192.0.2.10")
            call.to_tag = "tt"
            journal.call_up(call)
            calls.append(call)
    for call in calls[:-3]:
        journal.call_down(call)
    assert not journal.failed
    invites, answered = read_journal(path)  # read while the writer still has it mapped
    assert sorted(int(i.key[1]) for i in invites) == list(range(0, 40, 2))
    assert all(i.request == request.to_bytes() and i.source == Address("192.0.2.10", 5060)
               for i in invites)  # fmt: skip
    assert {i.sent for i in invites} == {b"INVITE sent %d" % n for n in range(0, 40, 2)}
    assert [c.call_id for c in answered] == ["call-35", "call-37", "call-39"]
    assert os.path.getsize(path) > 4096  # the live records need more than the first size
    journal.close()
    # a worker killed in the middle of its last record: the body stored, the length not yet
    with open(path, "r+b") as file:
        file.seek(file.read().rindex(b"X{") - 4)
        file.write(bytes(4))
    still = ["call-33", "call-35", "call-37", "call-39"]
    assert [c.call_id for c in read_journal(path)[1]] == still


async def test_channel_hands_off_asks_and_notifies(store_path: str) -> None:
    got: list[tuple[int, bytes, Inbound]] = []
    notices: list[tuple[int, str, dict]] = []
    channels = []
    for index in range(2):

        async def query(op: str, args: dict, index: int = index) -> object:
            return {"worker": index, "op": op, "args": args}

        channel = Channel(
            SharedStore(store_path, index),
            [PUBLIC, PUBLIC_TCP],
            lambda data, inbound, index=index: got.append((index, data, inbound)),
            query,
            lambda op, args, index=index: notices.append((index, op, args)),
        )
        await channel.open()
        channels.append(channel)
    c0, c1 = channels
    try:
        assert c0.hand_off(1, b"INVITE x", Inbound(PUBLIC_TCP, Address("10.0.0.1", 5070), 9))
        answers = await c0.ask_all("stats", {"n": 1}, timeout=5)
        assert answers == {1: {"worker": 1, "op": "stats", "args": {"n": 1}}}
        c1.notify("bye", {"call_id": "x"})
        for _ in range(100):
            if got and notices:
                break
            await asyncio.sleep(0.01)
        # the connection id stays behind: the owner answers from its own sockets
        assert got == [(1, b"INVITE x", Inbound(PUBLIC_TCP, Address("10.0.0.1", 5070)))]
        assert notices == [(0, "bye", {"call_id": "x"})]
        assert (c0.sent, c1.received) == (1, 1)
        # a datagram without the instance's token is ignored
        c1.datagram_received(b"x" * 16 + b"M" + b"\x00" * 8, ("127.0.0.1", c0.store.port(0)))
        assert len(got) == 1
        # a worker that is down gets nothing
        c1.close()
        c1.store.clear_worker(1)
        assert not c0.hand_off(1, b"x", Inbound(PUBLIC, Address("10.0.0.1", 5070)))
        assert await c0.ask_all("stats", {}, timeout=0.5) == {}
    finally:
        c0.close()
        c1.close()


async def test_router_hands_each_message_to_its_owner(store_path: str) -> None:
    delivered: list[tuple[str, bytes]] = []  # (who got it, the bytes)
    channels = []
    for index in range(2):
        channel = Channel(
            SharedStore(store_path, index),
            [PUBLIC, PUBLIC_TCP],
            lambda data, inbound, index=index: delivered.append((f"w{index}", data)),
            lambda op, args: asyncio.sleep(0),
            lambda op, args: None,
        )
        await channel.open()
        channels.append(channel)
    router = Router(0, 2)
    src = Inbound(PUBLIC, Address("10.0.0.1", 5070))
    mine = next(f"c{n}" for n in range(100) if mix_call_id(f"c{n}".encode()) % 2 == 0)
    theirs = next(f"c{n}" for n in range(100) if mix_call_id(f"c{n}".encode()) % 2 == 1)
    request = "INVITE sip:x SIP/2.0\r\nCall-ID: {}\r\n\r\n".format
    response = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKpksW01ab\r\n\r\n"
    try:
        router.on_message(request(mine).encode(), src)  # the server is not started: dropped
        router.local = lambda data, inbound: delivered.append(("local", data))
        router.on_message(request(theirs).encode(), src)  # no channel yet: handled here
        router.channel = channels[0]
        for data in (request(mine), request(theirs)):
            router.on_message(data.encode(), src)
        router.on_message(response, src)  # worker 1's branch
        router.on_message(request(theirs).encode(), Inbound(PUBLIC_TCP, src.source, 3))  # TCP
        for _ in range(100):
            if len(delivered) == 5:
                break
            await asyncio.sleep(0.01)
        assert sorted(delivered) == sorted(
            [
                ("local", request(theirs).encode()),
                ("local", request(mine).encode()),
                ("w1", request(theirs).encode()),
                ("w1", response),
                ("local", request(theirs).encode()),  # a TCP request stays with its connection
            ]
        )
    finally:
        for channel in channels:
            channel.close()


# -- configuration ----------------------------------------------------------------------------


def test_workers_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PKS_CONFIG", raising=False)
    assert Settings().worker_count == 1
    assert Settings(workers="3", listen="udp:127.0.0.1:5060").worker_count == 3
    for cores, workers in ((3, 3), (MAX_WORKERS + 100, MAX_WORKERS), (None, 1)):
        monkeypatch.setattr(os, "cpu_count", lambda n=cores: n)
        assert Settings(workers="AUTO").worker_count == workers
    with pytest.raises(ConfigError, match="PKS_WORKERS"):
        Settings(workers="0")
    with pytest.raises(ConfigError, match="port 0"):
        Settings(workers="2", listen="udp:127.0.0.1:0")


async def test_a_tcp_send_goes_through_the_worker_holding_the_connection(
    store_path: str,
) -> None:
    from pks.net import Send
    from pks.workers.node import WorkerNode

    relayed: list[tuple[int, Send]] = []
    nodes = []
    for index in range(2):
        node = WorkerNode(SharedStore(store_path, index))
        node.channel = Channel(
            node.store,
            [PUBLIC, PUBLIC_TCP],
            lambda *a: None,
            lambda op, args: asyncio.sleep(0),
            lambda op, args: None,
            lambda send, index=index: relayed.append((index, send)),
        )
        await node.channel.open()
        nodes.append(node)
    n0, n1 = nodes
    peer = Address("10.0.0.7", 40123)
    send = Send(b"BYE sip:x SIP/2.0\r\n\r\n", peer, PUBLIC_TCP)
    try:
        assert not n0.relay(send)  # nobody holds a connection: open one here
        n1.claim(PUBLIC_TCP, peer)
        assert not n1.relay(send)  # the holder sends itself
        assert n0.relay(send)
        assert not n0.relay(Send(b"x", Address("10.0.0.7", 40124), PUBLIC_TCP))
        for _ in range(100):
            if relayed:
                break
            await asyncio.sleep(0.01)
        assert relayed == [(1, send)]
        n1.release(PUBLIC_TCP, peer)
        assert not n0.relay(send)
    finally:
        for node in nodes:
            node.close()


def test_calls_per_second_are_the_instances(store_path: str) -> None:
    from pks.route.fraud import CallRates
    from pks.workers.shared import RateShare

    w0, w1 = CallRates(), CallRates()
    w0.share = RateShare(SharedStore(store_path, 0), "cps-peer")
    w1.share = RateShare(SharedStore(store_path, 1), "cps-peer")
    second = 1_800_000_000
    let_through = [rates.take("pbx1", 3, second) for rates in (w0, w1, w0, w1, w0, w1)]
    assert let_through == [True, True, True, False, False, False]  # 3 for the instance
    assert w1.take("pbx1", 3, second + 1) and w0.take("pbx1", 3, second + 1)  # a new second
    assert w0.take("pbx2", 3, second + 1)  # keys apart
