"""Socket selection for any set of listening sockets (pks.forward.sockets.Sockets).

The issue this answers: with default names (``udp:HOST:PORT``), a ``;transport=tcp`` Route
naming us was looked up by the UDP socket's name, found no TCP socket of that name, and fell
to the first TCP socket — another address than the one the peer knows.
"""

from __future__ import annotations

import logging

import pytest

from pks.forward.sockets import Sockets
from pks.net import Proto, SocketInfo
from pks.sip import parse_uri


def sock(
    proto: str, host: str, port: int = 5060, name: str | None = None, **kw: object
) -> SocketInfo:
    p = Proto(proto)
    return SocketInfo(name or f"{proto}:{host}:{port}", p, host, port, **kw)  # type: ignore[arg-type]


U1, T1 = sock("udp", "127.0.12.1"), sock("tcp", "127.0.12.1")
U4, T4 = sock("udp", "127.0.12.4"), sock("tcp", "127.0.12.4")
TWO_ADDRESSES = Sockets((U1, T1, U4, T4))


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:127.0.12.4;lr", U4),
        ("sip:127.0.12.4:5060;transport=tcp;lr", T4),
        ("sip:127.0.12.4;transport=TCP;r2=on;lr", T4),
        ("sip:127.0.12.1;transport=tcp;lr", T1),
        ("sip:127.0.12.1:5060;transport=udp;lr", U1),
        ("sip:127.0.12.4:5070;lr", None),  # another port: not us
        ("sip:127.0.12.9;lr", None),
        ("tel:+331234", None),
    ],
)
def test_a_uri_names_the_socket_of_its_address_port_and_transport(
    uri: str, expected: SocketInfo | None
) -> None:
    assert TWO_ADDRESSES.is_me(parse_uri(uri)) == expected


def test_a_transport_we_do_not_listen_with_there_is_still_us() -> None:
    """Our address and port with a transport we lack there: still our entry to remove."""
    only_udp = Sockets((U1, T4))
    assert only_udp.is_me(parse_uri("sip:127.0.12.1;transport=tcp;lr")) == U1
    assert only_udp.is_me(parse_uri("sip:127.0.12.4;transport=tls;lr")) == T4


def test_advertised_and_wildcard_addresses_are_us() -> None:
    public = sock("udp", "10.0.0.5", advertise_host="203.0.113.5", advertise_port=5080)
    wildcard = sock("tcp", "0.0.0.0")
    socks = Sockets((public, wildcard), local_hosts=("192.0.2.44",))
    assert socks.is_me(parse_uri("sip:203.0.113.5:5080;lr")) == public
    assert socks.is_me(parse_uri("sip:10.0.0.5:5060;lr")) == public
    assert socks.is_me(parse_uri("sip:192.0.2.44;transport=tcp;lr")) == wildcard
    assert socks.addresses[("203.0.113.5", 5080)] == public


def test_no_name_the_socket_of_the_inbound_address_for_each_transport() -> None:
    """An INVITE that came in on tcp:.4 leaves by udp:.4 (not udp:.1, the first UDP one)."""
    assert TWO_ADDRESSES.pick(None, Proto.UDP, T4) == U4
    assert TWO_ADDRESSES.pick(None, Proto.TCP, U4) == T4
    assert TWO_ADDRESSES.pick(None, Proto.TCP, T1) == T1
    assert TWO_ADDRESSES.pick(None, Proto.UDP, None) == U1  # no inbound: the first


def test_same_port_first_then_any_port_then_the_first_socket() -> None:
    u_5060, t_5070, t_5060 = (
        sock("udp", "10.0.0.1"),
        sock("tcp", "10.0.0.1", 5070),
        sock("tcp", "10.0.0.1"),
    )
    other = sock("udp", "10.0.0.2")
    socks = Sockets((t_5070, u_5060, t_5060, other))
    assert socks.pick(None, Proto.TCP, u_5060) == t_5060
    assert socks.pick(None, Proto.TCP, other) == t_5070  # no TCP on .2: the first TCP
    only = Sockets((u_5060, t_5070))
    assert only.pick(None, Proto.TCP, u_5060) == t_5070


def test_a_name_of_another_transport_stands_for_its_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "pks.proxy"):
        assert TWO_ADDRESSES.pick("udp:127.0.12.4:5060", Proto.TCP, T1) == T4
        assert TWO_ADDRESSES.pick("tcp:127.0.12.1:5060", Proto.UDP, U4) == U1
    assert caplog.records == []


def test_shared_names_and_the_default_name() -> None:
    pub_u, pub_t = sock("udp", "10.0.0.1", name="public"), sock("tcp", "10.0.0.1", name="public")
    ipbx = sock("udp", "10.0.0.2", name="ipbx")
    socks = Sockets((pub_u, pub_t, ipbx), default="ipbx")
    assert socks.pick("public", Proto.TCP, ipbx) == pub_t
    assert socks.pick(None, Proto.UDP, pub_u) == ipbx  # the default name wins over inbound
    assert socks.pick(None, Proto.TCP, pub_u) == pub_t  # ipbx has no TCP: inbound's address


def test_an_unknown_name_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    socks = Sockets((U1, T1))
    with caplog.at_level(logging.WARNING, "pks.proxy"):
        for _ in range(3):
            assert socks.pick("nowhere", Proto.UDP, None) == U1
    assert [r.getMessage() for r in caplog.records] == [
        "no socket named 'nowhere'; using the default"
    ]


def test_no_socket_of_that_transport() -> None:
    assert Sockets((U1,)).pick(None, Proto.TCP, U1) is None
