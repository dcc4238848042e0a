"""The usual-spelling Via reader gives what the grammar's regex gives, or hands over."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pks.sip import ParseError, parse_via
from pks.sip.via import _parse_usual, parse_via_general

_PIECES = st.sampled_from(
    ["SIP/2.0/", "SIP / 2.0 / ", "UDP", "udp", "TCP", "TLS", "WS", "SCTP", "XYZ", " ", "  ",
     "\t", "h", "host.example", "10.0.0.1", "a..b", "-a", "a-", ".", "[::1]", ":", "5060",
     "0", "65536", "99999", "05060", "١٢", ";", "branch=z9hG4bK1", "rport", "received=1.2.3.4",
     "=", '"', "é", ",", "\r\n"]
)  # fmt: skip


def _outcome(parse: object, text: str) -> object:
    try:
        return parse(text)  # type: ignore[operator]
    except ParseError as exc:
        return ("error", str(exc))


@settings(max_examples=3000, deadline=None)
@given(pieces=st.lists(_PIECES, max_size=9))
def test_usual_reader_agrees_with_the_grammar(pieces: list[str]) -> None:
    text = "".join(pieces)
    usual = _parse_usual(text)
    general = _outcome(parse_via_general, text)
    if usual is not None:
        assert usual == general
    assert _outcome(parse_via, text) == general


@pytest.mark.parametrize(
    "text",
    [
        "SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bK-1-1-0;rport",
        " SIP/2.0/UDP pbx.example.com;branch=z9hG4bKx;received=10.0.0.1;rport=5070 ",
        "SIP/2.0/TCP h:5061",
        "SIP/2.0/UDP h",
    ],
)
def test_usual_spellings_take_the_fast_way(text: str) -> None:
    via = _parse_usual(text)
    assert via is not None and via == parse_via_general(text)


def test_other_spellings_take_the_general_way() -> None:
    others = ("SIP / 2.0 / UDP h", "SIP/2.0/udp h", "SIP/2.0/UDP [::1]:5060", "SIP/2.0/UDP h ;x")
    for text in others:
        assert _parse_usual(text) is None
        assert parse_via(text) == parse_via_general(text)
