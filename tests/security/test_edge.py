"""The edge on the wire: each attack of the edge-security issue against the real proxy.

Every test plays an attacker with raw datagrams (`Wire`): from a *stranger* (an address in no
table) and from a *known peer* (the carrier, an ``address`` row), with a *victim* listening
on a host in no table for anything relayed to it, and the customer's PBX (a gateway) as a
scripted peer. Each asserts what is on the wire afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.e2e.harness import (
    PROXY_IP,
    Endpoint,
    ProxyProcess,
    Stage,
    carrier,
    customer,
    gateway,
    regex_rule,
)

from .wire import Wire, request, response_to

pytestmark = pytest.mark.e2e
WORKERS = int(os.environ.get("PKS_TEST_WORKERS", "1"))  # the e2e suite's worker mode

DID = "33202020201"
CUSTOMER_SET = 23


class World:
    """The proxy, a carrier (known), the PBX (a gateway), a stranger and a victim."""

    def __init__(self, stage: Stage, env: dict[str, str] | None = None) -> None:
        self.carrier, self.pbx, self.stranger, self.victim, self.ipbx = (
            stage.endpoint() for _ in range(5)
        )
        self.proxy: ProxyProcess = stage.start_proxy(
            address=[carrier(self.carrier), customer(self.ipbx)],
            dialplan=[regex_rule(1, r"^3320202020[0-9]$", CUSTOMER_SET)],
            dispatcher=[gateway(CUSTOMER_SET, self.pbx)],
            env=env,
        )
        self.at = self.proxy.at()
        self.wire = Wire(
            stage.netns,
            {
                "carrier": self.carrier,
                "pbx": self.pbx,
                "stranger": self.stranger,
                "victim": self.victim,
                "ipbx": self.ipbx,
            },
        )

    def quiet(self, seconds: float = 1.0) -> dict[str, list[tuple[Endpoint, bytes]]]:
        return self.wire.drain(seconds)

    def invite_through(self, call_id: str = "call-1") -> bytes:
        """The carrier calls the DID; returns the INVITE as the PBX received it."""
        self.wire.send(
            "carrier",
            self.at,
            request(
                "INVITE",
                f"sip:{DID}@{PROXY_IP}",
                self.carrier,
                call_id=call_id,
                branch=f"z9hG4bK{call_id}",
                body="v=0\r\n",
                extra="Content-Type: application/sdp",
            ),
        )
        got = self.wire.recv("pbx")
        assert got is not None, "the INVITE did not reach the PBX"
        return got[1]


@pytest.fixture
def world(stage: Stage) -> Iterator[World]:
    w = World(stage)
    yield w
    w.wire.close()


def statuses(datagrams: list[tuple[Endpoint, bytes]]) -> list[int]:
    return [int(d[8:11]) for _, d in datagrams if d.startswith(b"SIP/2.0 ")]


def test_a_stranger_gets_nothing_and_costs_no_log_lines(world: World) -> None:
    huge = "INVITE sip:x@h SIP/2.0\r\n" + "X-A: b\r\n" * 7_500 + "\r\n"
    attacks = [
        b"\x00\xff garbage",
        "INVITE sip:x SIP/2.0\r\n\r\n",  # malformed: a 400 to a known peer
        request("INVITE", f"sip:{DID}@{PROXY_IP}", world.stranger),  # routable number
        request("OPTIONS", f"sip:{PROXY_IP}", world.stranger),
        request("CANCEL", f"sip:{DID}@{PROXY_IP}", world.stranger),  # a 481 to a known peer
        request("BYE", f"sip:{DID}@{PROXY_IP}", world.stranger, to_tag="x"),
        huge[:60_000],
    ]
    for data in attacks * 5:
        world.wire.send("stranger", world.at, data)
    got = world.quiet(1.5)
    assert got["stranger"] == [] and got["victim"] == [] and got["pbx"] == []
    lines = [line for line in world.proxy.log().splitlines() if world.stranger.ip in line]
    assert len(lines) <= WORKERS, lines  # one summary line (per worker), not one per packet


def test_a_made_up_dialog_is_not_relayed(world: World) -> None:
    """Open relay: To-tag + Route to a foreign host (toll fraud, reflection, a loop)."""
    foreign = f"<sip:{world.victim};lr>"
    ours = f"<sip:{PROXY_IP}:{world.at.port};lr>"
    looped = f"{ours}, <sip:10.0.0.1;maddr={PROXY_IP};lr>"
    for sender in ("stranger", "carrier"):
        at = world.stranger if sender == "stranger" else world.carrier
        world.wire.send(
            sender,
            world.at,
            request(
                "INVITE",
                f"sip:+19005550100@{world.victim}",
                at,
                to_tag="x",
                route=foreign,
            ),
        )
        world.wire.send(
            sender,
            world.at,
            request(
                "OPTIONS",
                f"sip:x@{world.victim}",
                at,
                to_tag="x",
                route=f"{ours}, {foreign}",
                branch="z9hG4bKatt2",
            ),
        )
        world.wire.send(
            sender,
            world.at,
            request(
                "INVITE",
                f"sip:x@{PROXY_IP}",
                at,
                to_tag="x",
                route=looped,
                branch="z9hG4bKatt3",
            ),
        )
    got = world.quiet(2.0)
    assert got["victim"] == [] and got["pbx"] == [] and got["stranger"] == []
    assert statuses(got["carrier"]) == [403, 403, 403]  # a known peer learns why


def test_an_alias_name_is_never_resolved_nor_connected(world: World) -> None:
    ours = f"<sip:{PROXY_IP}:{world.at.port};lr>"
    ruri = "sip:x@127.0.0.1;alias=localhost~5060~2"
    world.wire.send(
        "carrier", world.at, request("BYE", ruri, world.carrier, to_tag="x", route=ours)
    )
    got = world.quiet(1.0)
    assert statuses(got["carrier"]) == [403]  # our Route is not signed: nothing is tried
    assert "localhost" not in world.proxy.log().split("ready", 1)[1]


def test_a_forged_response_does_not_end_a_ringing_call(world: World) -> None:
    invite = world.invite_through()
    world.wire.send("pbx", world.at, response_to(invite, 180, "Ringing"))
    busy = response_to(invite, 486, "Busy Here")  # with the real branch: the worst case
    world.wire.send("stranger", world.at, busy)
    world.wire.send("carrier", world.at, busy)
    world.wire.send("victim", world.at, busy)
    got = world.quiet(1.0)
    assert statuses(got["carrier"]) == [100, 180]
    world.wire.send("pbx", world.at, response_to(invite, 200, "OK"))
    got = world.quiet(1.0)
    assert statuses(got["carrier"]) == [200]


def test_a_stray_2xx_is_not_reflected(world: World) -> None:
    invite = world.invite_through()
    ours = invite.decode().split("Via: ", 1)[1].split("\r\n", 1)[0]
    for sender, toward in (("stranger", world.victim), ("carrier", world.victim)):
        stray = (
            f"SIP/2.0 200 OK\r\nVia: {ours}x\r\nVia: SIP/2.0/UDP {toward};branch=z9hG4bKv\r\n"
            "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: s\r\nCSeq: 1 INVITE\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        world.wire.send(sender, world.at, stray)
    got = world.quiet(1.0)
    assert got["victim"] == [] and got["stranger"] == []


def test_methods_other_than_invite_are_refused_out_of_dialog(world: World) -> None:
    for n, method in enumerate(("SUBSCRIBE", "PUBLISH", "REGISTER", "MESSAGE")):
        world.wire.send(
            "ipbx",
            world.at,
            request(
                method,
                f"sip:{DID}@{PROXY_IP}",
                world.ipbx,
                branch=f"z9hG4bKm{n}",
                call_id=f"m{n}",
            ),
        )
    got = world.quiet(1.0)
    assert statuses(got["ipbx"]) == [405] * 4 and got["pbx"] == []
    assert all(b"\r\nAllow: " in d for _, d in got["ipbx"])


def test_a_long_user_part_gets_484(world: World) -> None:
    world.wire.send(
        "carrier", world.at, request("INVITE", f"sip:{'3' * 65}@{PROXY_IP}", world.carrier)
    )
    assert statuses(world.quiet(1.0)["carrier"]) == [484]


def test_a_dialog_through_us_works_both_ways(world: World) -> None:
    invite = world.invite_through()
    ok = response_to(invite, 200, "OK").replace(
        "Content-Length: 0", f"Contact: <sip:pbx@{world.pbx}>\r\nContent-Length: 0"
    )
    world.wire.send("pbx", world.at, ok)
    relayed = [d for _, d in world.quiet(1.0)["carrier"] if d.startswith(b"SIP/2.0 200")]
    assert relayed, "no 200 at the caller"
    rr = relayed[0].decode().split("Record-Route: ", 1)[1].split("\r\n", 1)[0]
    assert ";pks=" in rr
    from_carrier = request(
        "ACK",
        f"sip:pbx@{world.pbx}",
        world.carrier,
        to_tag="t1",
        route=rr,
        call_id="call-1",
        branch="z9hG4bKack",
    )
    world.wire.send("carrier", world.at, from_carrier)
    assert (got := world.wire.recv("pbx")) is not None and got[1].startswith(b"ACK ")
    # the callee hangs up: its From is the caller's To, and the other way round
    bye = (
        f"BYE sip:attacker@{world.carrier} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {world.pbx};branch=z9hG4bKbye1;rport\r\nRoute: {rr}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:victim@example.com>;tag=t1\r\n"
        f"To: <sip:attacker@{world.carrier.ip}>;tag=a1\r\nCall-ID: call-1\r\nCSeq: 1 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    world.wire.send("pbx", world.at, bye)
    got = world.wire.recv("carrier")
    assert got is not None and got[1].startswith(b"BYE "), got
    world.wire.send("carrier", world.at, response_to(got[1], 200, "OK"))
    back = world.wire.recv("pbx")
    assert back is not None and back[1].startswith(b"SIP/2.0 200")


def test_forged_keepalive_answers_do_not_disable_a_gateway(stage: Stage) -> None:
    world = World(stage, env={"PKS_DS_PING_INTERVAL": "1"})
    try:
        for _ in range(4):  # more rounds than the thresholds need to turn it inactive
            got = world.wire.recv("pbx", timeout=3.0)
            assert got is not None and got[1].startswith(b"OPTIONS ")
            forged = response_to(got[1], 503, "Service Unavailable")
            world.wire.send("carrier", world.at, forged)  # a known peer, not the gateway
            world.wire.send("stranger", world.at, forged)
            world.wire.send("pbx", world.at, response_to(got[1], 200, "OK"))
        world.invite_through()  # still active: the call reaches it
    finally:
        world.wire.close()


def test_a_full_proxy_answers_503_and_holds_no_more(stage: Stage) -> None:
    world = World(stage, env={"PKS_MAX_TRANSACTIONS": "50"})  # per process: 50 silent calls
    sent = 60 * WORKERS
    try:
        for n in range(sent):  # the PBX never answers: each call waits
            world.wire.send(
                "carrier",
                world.at,
                request(
                    "INVITE",
                    f"sip:{DID}@{PROXY_IP}",
                    world.carrier,
                    call_id=f"c{n}",
                    branch=f"z9hG4bKc{n}",
                ),
            )
        got = world.quiet(1.5)
        codes = statuses(got["carrier"])
        trying, full = codes.count(100), codes.count(503)
        assert trying + full == sent and trying <= 50 * WORKERS and full >= 10, codes
        assert all(b"\r\nRetry-After: 5\r\n" in d for _, d in got["carrier"] if b" 503 " in d)
        relayed = {d.split(b"Call-ID: ", 1)[1].split(b"\r\n", 1)[0] for _, d in got["pbx"]}
        assert len(relayed) == trying
    finally:
        world.wire.close()


PEER_TABLE = """
CREATE TABLE pks_peer (
    id INTEGER PRIMARY KEY, kind VARCHAR(16) NOT NULL, name VARCHAR(64) NOT NULL,
    tag VARCHAR(64) NOT NULL, setid INTEGER NOT NULL, socket VARCHAR(64),
    max_calls INTEGER, description VARCHAR(255) NOT NULL DEFAULT '');
INSERT INTO pks_peer (kind, name, tag, setid, max_calls)
    VALUES ('provider', 'carrier', 'carrier', 21, 1);
"""


def test_a_bye_with_any_to_tag_frees_no_call_slot(stage: Stage) -> None:
    carrier_at, pbx, intruder = stage.endpoint(), stage.endpoint(), stage.endpoint()
    proxy = stage.start_proxy(
        address=[carrier(carrier_at), customer(intruder, "other")],
        dialplan=[regex_rule(1, r"^3320202020[0-9]$", CUSTOMER_SET)],
        dispatcher=[gateway(CUSTOMER_SET, pbx)],
        sql=PEER_TABLE,
    )
    at = proxy.at()
    wire = Wire(stage.netns, {"carrier": carrier_at, "pbx": pbx, "intruder": intruder})
    try:
        wire.send("carrier", at, request("INVITE", f"sip:{DID}@{PROXY_IP}", carrier_at))
        invite = wire.recv("pbx")
        assert invite is not None
        ok = response_to(invite[1], 200, "OK")
        wire.send("pbx", at, ok)
        rr = ok.split("Record-Route: ", 1)[1].split("\r\n", 1)[0]
        for sender, tag in (("carrier", "made-up"), ("intruder", "t1")):
            sent_from = carrier_at if sender == "carrier" else intruder
            wire.send(
                sender,
                at,
                request(
                    "BYE",
                    f"sip:x@{pbx}",
                    sent_from,
                    to_tag=tag,
                    route=rr,
                    branch=f"z9hG4bK{sender}",
                ),
            )
        wire.drain(0.5)
        second = request(
            "INVITE",
            f"sip:{DID}@{PROXY_IP}",
            carrier_at,
            call_id="attack-2",
            branch="z9hG4bKsecond",
        )
        wire.send("carrier", at, second)
        got = wire.drain(1.0)
        assert 503 in statuses(got["carrier"])  # the first call still holds the one slot
        assert not [d for _, d in got["pbx"] if d.startswith(b"INVITE")]
    finally:
        wire.close()
