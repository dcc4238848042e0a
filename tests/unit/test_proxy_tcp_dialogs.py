"""Mixed UDP/TCP dialogs over two listening addresses with default socket names, in memory.

What a real PBX and carrier met (the issue "in-dialog requests take the wrong socket or find
the connection closed"): a ``;transport=tcp`` Route naming our second address must leave by
that address's TCP socket, without a warning; a request keeps the address it came in on when
it changes transport; the TCP connections a dialog needs are pinned from its 2xx to its BYE's
final response; a request toward a NAT alias never opens a connection to the peer's source
port, and failing that way is answered at once and logged once with the dialog's identity.
"""

from __future__ import annotations

import logging

import pytest
from harness import CARRIER, PBX, answer, bye, invite, seed_rows

from pks.net import Address, Inbound, Proto, Send, SocketInfo
from pks.proxy import CoreConfig, Proxy
from pks.route.rows import DispatcherRow
from pks.route.snapshot import build_snapshot
from pks.sip import Message, parse


def sock(proto: Proto, host: str) -> SocketInfo:
    return SocketInfo(f"{proto.value}:{host}:5060", proto, host, 5060)


U1, T1 = sock(Proto.UDP, "127.0.12.1"), sock(Proto.TCP, "127.0.12.1")
U4, T4 = sock(Proto.UDP, "127.0.12.4"), sock(Proto.TCP, "127.0.12.4")
DID = "33202020201"
OFFNET = "33123456789"
PBX_TCP_ROWS = seed_rows(
    dispatcher=(
        DispatcherRow(1, 23, f"sip:{PBX.host}:{PBX.port};transport=tcp", 0, 0, "", "pbx1"),
        DispatcherRow(2, 21, f"sip:{CARRIER.host}:{CARRIER.port}", 0, 0, "", "carrier"),
    )
)


class World:
    def __init__(self) -> None:
        cfg = CoreConfig(call_max_duration=600.0)
        self.proxy = Proxy((U1, T1, U4, T4), cfg, build_snapshot(PBX_TCP_ROWS))
        self.now = 1000.0

    def deliver(
        self, data: str, src: Address, sock: SocketInfo, conn: int | None = None
    ) -> list[Send]:
        if sock.proto is Proto.TCP:
            data = data.replace("SIP/2.0/UDP", "SIP/2.0/TCP")
        return self.proxy.receive(data.encode(), Inbound(sock, src, conn), self.now)


def only(sends: list[Send], dest: Address) -> tuple[Send, Message]:
    found = [s for s in sends if s.dest == dest and parse(s.data).status != 100]
    assert len(found) == 1, found
    return found[0], parse(found[0].data)


def test_carrier_call_to_a_tcp_pbx_and_the_carriers_bye(caplog: pytest.LogCaptureFixture) -> None:
    w = World()
    with caplog.at_level(logging.WARNING, "pks.proxy"):
        sent, fwd = only(w.deliver(invite(DID, CARRIER), CARRIER, U4), PBX)
        assert sent.socket == T4  # the inbound address, over TCP (not tcp:.1, the first)
        rr = [(r.uri.host, r.uri.transport) for r in fwd.record_routes]
        assert rr == [("127.0.12.4", "tcp"), ("127.0.12.4", "udp")]
        ok = answer(fwd, 200, "OK", contact=f"sip:pbx@{PBX};transport=tcp")
        _, relayed = only(w.deliver(ok, PBX, T4, conn=5), CARRIER)
        assert w.proxy.pins.pinned(5, w.now)
        # the carrier's BYE: Route = the Record-Route reversed, ours both
        routes = ", ".join(reversed([v.strip() for v in relayed.values("record-route")]))
        text = bye(
            fwd,
            f"sip:pbx@{PBX};transport=tcp",
            CARRIER,
            from_=f"<sip:caller@{CARRIER.host}>;tag=ft1",
            to=f"<sip:{DID}@127.0.0.10>;tag=tt1",
        )
        text = text.replace(text.split("Route: ", 1)[1].split("\r\n", 1)[0], routes, 1)
        sent, fwd_bye = only(w.deliver(text, CARRIER, U4), PBX)
        assert sent.socket == T4 and sent.connect
        assert w.proxy.pins.pinned(5, w.now)  # until the BYE is answered
        only(w.deliver(answer(fwd_bye, 200, "OK"), PBX, T4, conn=5), CARRIER)
        assert not w.proxy.pins.pinned(5, w.now)
    assert [r for r in caplog.records if "socket" in r.getMessage()] == []


def test_tcp_caller_behind_nat_the_carriers_bye_reuses_its_connection_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = World()
    nat = Address(PBX.host, 40123)  # the PBX's ephemeral source port
    call = invite(OFFNET, nat, contact=f"sip:pbx@{PBX};transport=tcp")
    sent, fwd = only(w.deliver(call, nat, T4, conn=3), CARRIER)
    assert sent.socket == U4  # came in on tcp:.4: leaves by udp:.4
    contact = fwd.contacts[0].uri
    assert contact.param("alias") == f"{nat.host}~{nat.port}~2"
    only(w.deliver(answer(fwd, 200, "OK", contact=f"sip:gw@{CARRIER}"), CARRIER, U4), nat)
    assert w.proxy.pins.pinned(3, w.now)
    routes = ", ".join(v.strip() for v in fwd.values("record-route"))  # the callee's order
    text = (
        f"BYE {contact.raw} SIP/2.0\r\nVia: SIP/2.0/UDP {CARRIER};branch=z9hG4bKbye\r\n"
        f"Route: {routes}\r\nMax-Forwards: 70\r\nFrom: <sip:{OFFNET}@127.0.0.10>;tag=tt1\r\n"
        f"To: <sip:caller@{PBX.host}>;tag=ft1\r\nCall-ID: call-1\r\nCSeq: 5 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    sent, fwd_bye = only(w.deliver(text, CARRIER, U4), nat)
    assert sent.socket == T4 and not sent.connect  # the alias: its connection or nothing
    assert "alias" not in (fwd_bye.ruri or "")
    # the connection is gone: the transport fails the send at once, without connecting
    with caplog.at_level(logging.INFO, "pks.proxy"):
        out = w.proxy.send_failed(sent, "no open connection", w.now)
    _, refused = only(out, CARRIER)
    assert refused.status == 503
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(lines) == 1 and "call-1" in lines[0] and "ft1" in lines[0], lines
    assert not w.proxy.pins.pinned(3, w.now)  # the dialog is over


def test_pins_end_at_call_max_duration() -> None:
    w = World()
    nat = Address(PBX.host, 40123)
    _, fwd = only(w.deliver(invite(OFFNET, nat), nat, T4, conn=3), CARRIER)
    only(w.deliver(answer(fwd, 200, "OK", contact=f"sip:gw@{CARRIER}"), CARRIER, U4), nat)
    assert w.proxy.pins.pinned(3, w.now + 599.0)
    assert not w.proxy.pins.pinned(3, w.now + 600.0)
