"""The usual-spelling Via reader gives what the grammar's regex gives, or hands over."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pks.sip import ParseError, parse_via
from pks.sip.via import Via, _parse_usual, parse_via_general

try:  # the optional accelerator (compiled pass only)
    from pks.sip._via import parse_usual as c_usual
except ImportError:
    c_usual = None
needs_c = pytest.mark.skipif(c_usual is None, reason="accelerator not built")

_PIECES = st.sampled_from(
    ["SIP/2.0/", "SIP / 2.0 / ", "UDP", "udp", "TCP", "TLS", "WS", "SCTP", "XYZ", " ", "  ",
     "\t", "h", "host.example", "10.0.0.1", "a..b", "-a", "a-", ".", "[::1]", ":", "5060",
     "0", "65536", "99999", "05060", "١٢", ";", "branch=z9hG4bK1", "rport", "received=1.2.3.4",
     "=", '"', "é", ",", "\r\n"]
)  # fmt: skip


USUAL = [
    "SIP/2.0/UDP 127.0.1.1:5060;branch=z9hG4bK-1-1-0;rport",
    " SIP/2.0/UDP pbx.example.com;branch=z9hG4bKx;received=10.0.0.1;rport=5070 ",
    "SIP/2.0/TCP h:5061",
    "SIP/2.0/UDP h",
]


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


@pytest.mark.parametrize("text", USUAL)
def test_usual_spellings_take_the_fast_way(text: str) -> None:
    via = _parse_usual(text)
    assert via is not None and via == parse_via_general(text)


def test_other_spellings_take_the_general_way() -> None:
    others = ("SIP / 2.0 / UDP h", "SIP/2.0/udp h", "SIP/2.0/UDP [::1]:5060", "SIP/2.0/UDP h ;x")
    for text in others:
        assert _parse_usual(text) is None
        assert parse_via(text) == parse_via_general(text)


_PARAM_PIECES = st.sampled_from(
    ["SIP/2.0/UDP h", "SIP/2.0/TCP 10.0.0.1:5060", ";", ";;", "Branch=z9hG4bKA", "BRANCH",
     "branch", "rport", "RPort=5", "a=b", "a==b", "=", " ", " = ", ",", ">", "<", "x y", "é",
     "\t", "\\", '"q"', "maddr=1.2.3.4", "ttl=1", ";branch=z9hG4bK2"]
)  # fmt: skip


_USUAL_START = st.sampled_from(
    ["SIP/2.0/UDP h", "SIP/2.0/TCP 10.0.0.1:5060", " SIP/2.0/WS a-b.c:1", "SIP/2.0/TLS x:65535",
     "SIP/2.0/SCTP 9", "SIP/2.0/WSS h:0", "SIP/2.0/UDP h:", "SIP/2.0/UDP .h"]
)  # fmt: skip


def _usual_reader(text: str) -> object:
    try:
        return _parse_usual(text)
    except ParseError:
        return "error"


@needs_c
@settings(max_examples=4000, deadline=None)
@given(
    start=_USUAL_START | st.just(""),
    pieces=st.lists(_PIECES | _PARAM_PIECES, max_size=10),
)
def test_the_accelerator_reads_what_the_usual_reader_reads(start: str, pieces: list[str]) -> None:
    text = start + "".join(pieces)
    fields = c_usual(text)  # type: ignore[misc]
    if fields is not None:  # else the Python readers decide (as the test above checks)
        assert Via(*fields) == _usual_reader(text)


@needs_c
@pytest.mark.parametrize(
    "text",
    [*USUAL, "SIP/2.0/WSS h;Branch = z9hG4bKx ; RPORT;ttl"],
)
def test_usual_spellings_are_read_by_the_accelerator(text: str) -> None:
    fields = c_usual(text)  # type: ignore[misc]
    assert fields is not None
    via = Via(*fields)
    assert via == _parse_usual(text) == parse_via_general(text)
