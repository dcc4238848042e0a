"""RFC 3581 on the top Via of every request (pks.forward.nat.fix_top_via).

received is added when the sent-by host is not the packet's source IP or when the request
asks for rport; rport is filled with the source port; any received/rport already there is
replaced. The usual spelling (a bare ``;rport`` last) keeps the rest of the text as written.
"""

from __future__ import annotations

import pytest

from pks.forward.nat import fix_top_via
from pks.net import address
from pks.sip.via import parse_via

SRC = address("192.0.2.7", 5071)


@pytest.mark.parametrize(
    ("via", "fixed"),
    [
        ("SIP/2.0/UDP 192.0.2.7:5071;branch=z9hG4bK1", None),
        ("SIP/2.0/UDP 192.0.2.7;branch=z9hG4bK1", None),
        (
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1",
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;received=192.0.2.7",
        ),
        (
            "SIP/2.0/UDP pbx.example.com;branch=z9hG4bK1",
            "SIP/2.0/UDP pbx.example.com;branch=z9hG4bK1;received=192.0.2.7",
        ),
        (  # the usual spelling: as written, then both
            "SIP/2.0/UDP 192.0.2.7:5071;branch=z9hG4bK1;X=Y;rport",
            "SIP/2.0/UDP 192.0.2.7:5071;branch=z9hG4bK1;X=Y;received=192.0.2.7;rport=5071",
        ),
        (
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.7;rport=5071",
        ),
        (  # rport not last: rebuilt, parameters in order, received and rport at the end
            "SIP/2.0/UDP 10.0.0.1;rport;branch=z9hG4bK1",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.7;rport=5071",
        ),
        (  # a received already there is replaced
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=10.9.9.9;rport",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.7;rport=5071",
        ),
        (
            "SIP/2.0/UDP 192.0.2.7:5071;received=10.9.9.9;branch=z9hG4bK1",
            "SIP/2.0/UDP 192.0.2.7:5071;branch=z9hG4bK1;received=192.0.2.7",
        ),
        (  # a filled rport is refilled; two rport parameters leave one
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;rport=9;rport",
            "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1;received=192.0.2.7;rport=5071",
        ),
        (
            "SIP/2.0/UDP 192.0.2.7:5071;branch=z9hG4bK1;rport=1",
            "SIP/2.0/UDP 192.0.2.7:5071;branch=z9hG4bK1;received=192.0.2.7;rport=5071",
        ),
    ],
)
def test_received_and_rport(via: str, fixed: str | None) -> None:
    assert fix_top_via(parse_via(via), SRC) == fixed
    if fixed is not None:  # what we write parses back to the same sent-by and branch
        again = parse_via(fixed)
        assert (again.host, again.port, again.branch) == (
            parse_via(via).host,
            parse_via(via).port,
            "z9hG4bK1",
        )
        assert again.received == "192.0.2.7"
