"""for_branch and the R-URI host of a gateway set (pks_set.ruri_host = gateway, Kamailio's
ds_select_domain): host, port and transport become the gateway's, the rest is kept."""

from __future__ import annotations

import pytest

from pks.forward.request import for_branch, rewrite_ruri_host
from pks.net import Proto, SocketInfo
from pks.route import DispatcherRow
from pks.route.decision import Target
from pks.route.rows import SetRow, TableRows
from pks.route.snapshot import build_snapshot
from pks.sip import Message, parse

SOCK = SocketInfo("public", Proto.UDP, "127.0.0.10", 5060)
SOCK_TCP = SocketInfo("public", Proto.TCP, "127.0.0.10", 5060)


def request(ruri: str) -> Message:
    return parse(
        f"INVITE {ruri} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.50:5060;branch=z9hG4bKa1\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:caller@192.0.2.50>;tag=f1\r\n"
        "To: <sip:33123456789@127.0.0.10>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n".encode()
    )


def gateway(uri: str, mode: str = "gateway") -> Target:
    rows = TableRows(
        dispatcher=(DispatcherRow(1, 7, uri, 0, 0, "", ""),), sets=(SetRow(7, None, mode),)
    )
    return build_snapshot(rows).dispatcher_sets()[0].targets[0]


@pytest.mark.parametrize(
    ("ruri", "gw", "want"),
    [
        (  # user part and the other parameters kept, our port replaced by none
            "sip:33123456789@127.0.0.10:5060;user=phone",
            "sip:192.0.2.1",
            "sip:33123456789@192.0.2.1;user=phone",
        ),
        (  # gateway with a port
            "sip:33123456789@127.0.0.10",
            "sip:192.0.2.1:5070",
            "sip:33123456789@192.0.2.1:5070",
        ),
        (  # IPv6 gateway in brackets, its transport replacing ours, in place of the host
            "sip:+33123456789;npdi@[2001:db8::10]:5060;transport=udp;user=phone",
            "sip:[2001:db8::1]:5080;transport=tcp",
            "sip:+33123456789;npdi@[2001:db8::1]:5080;user=phone;transport=tcp",
        ),
        (  # a gateway without transport drops ours (TCP to us, UDP to it)
            "sip:alice@127.0.0.10;transport=TCP;lr",
            "sip:192.0.2.1",
            "sip:alice@192.0.2.1;lr",
        ),
        (  # a named gateway, user with password and URI headers
            "sip:bob:pw@127.0.0.10:5060;ttl=1?subject=hi%40there",
            "sip:carrier.example.net;transport=tcp",
            "sip:bob:pw@carrier.example.net;ttl=1;transport=tcp?subject=hi%40there",
        ),
        ("sip:127.0.0.10", "sip:192.0.2.1:5070", "sip:192.0.2.1:5070"),  # no user part
        ("sips:carol@127.0.0.10", "sip:192.0.2.1", "sips:carol@192.0.2.1"),  # scheme kept
    ],
)
def test_for_branch_writes_the_gateway_host(ruri: str, gw: str, want: str) -> None:
    base = request(ruri)
    sent = for_branch(base, SOCK, SOCK, "z9hG4bKx.1", None, gateway(gw))
    assert sent.ruri == want
    assert sent.first_line == f"INVITE {want} SIP/2.0".encode()
    again = parse(sent.to_bytes())  # on the wire, and parsed back the same
    assert again.ruri == want and again.uri.user == base.uri.user
    assert base.ruri == ruri  # the base every branch starts from is untouched
    assert sent.top_via.branch == "z9hG4bKx.1"


def test_tcp_gateway_sets_transport_tcp() -> None:
    sent = for_branch(
        request("sip:33123456789@127.0.0.10:5060"),
        SOCK,
        SOCK_TCP,
        "z9hG4bKx.2",
        "tok",
        gateway("sip:192.0.2.1:5060;transport=tcp"),
    )
    assert sent.ruri == "sip:33123456789@192.0.2.1:5060;transport=tcp"
    assert sent.uri.transport == "tcp" and sent.uri.host == "192.0.2.1"
    assert len(sent.values("record-route")) == 2  # the rest of for_branch is unchanged


@pytest.mark.parametrize("target", [None, "keep"])
def test_keep_leaves_the_ruri_alone(target: str | None) -> None:
    base = request("sip:33123456789@127.0.0.10:5060;user=phone")
    gw = None if target is None else gateway("sip:192.0.2.1:5070", target)
    sent = for_branch(base, SOCK, SOCK, "z9hG4bKx.3", None, gw)
    assert sent.ruri == base.ruri and sent.first_line == base.first_line


def test_a_resolved_name_still_puts_the_name_in_the_ruri() -> None:
    resolved = gateway("sip:carrier.example.net").at("192.0.2.7", 5060)
    sent = for_branch(request("sip:1234@127.0.0.10"), SOCK, SOCK, "z9hG4bKx.4", None, resolved)
    assert sent.ruri == "sip:1234@carrier.example.net"


def test_rewrite_leaves_other_schemes() -> None:
    assert rewrite_ruri_host("tel:+331234", "192.0.2.1", "") == "tel:+331234"
