"""At most ``max_headers`` header fields in a message (PKS_MAX_HEADERS, 256 by default): one
more is a 400 "Too Many Headers", found without building the fields (docs/security.md)."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest

from pks.sip import ParseError, parse

parse_module = importlib.import_module("pks.sip.parse")  # pks.sip.parse is the function

TOP = (
    b"INVITE sip:+33612345678@127.0.1.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.1.1:5070;branch=z9hG4bK-1\r\n"
    b"From: <sip:a@127.0.1.1>;tag=1\r\n"
    b"To: <sip:+33612345678@127.0.1.10>\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Max-Forwards: 70\r\n"
)
TOP_FIELDS = 6


def message(fields: int, *, top: bytes = TOP, filler: bytes = b"X-Pad: 1\r\n") -> bytes:
    """A request with exactly ``fields`` header fields (Content-Length last)."""
    return top + filler * (fields - TOP_FIELDS - 1) + b"Content-Length: 0\r\n\r\n"


@pytest.fixture
def limit() -> Iterator[int]:
    yield parse_module.header_limit()
    parse_module.configure()  # back to the default


def test_the_default_is_256(limit: int) -> None:
    assert limit == parse_module.MAX_HEADERS == 256


@pytest.mark.parametrize("bound", [256, 40])
def test_exactly_at_the_limit_parses(limit: int, bound: int) -> None:
    parse_module.configure(max_headers=bound)
    msg = parse(message(bound))
    assert len(msg.headers) == bound and msg.method == "INVITE"


@pytest.mark.parametrize("bound", [256, 40])
def test_one_over_the_limit_is_a_400_with_what_a_reply_needs(limit: int, bound: int) -> None:
    parse_module.configure(max_headers=bound)
    with pytest.raises(ParseError) as err:
        parse(message(bound + 1))
    assert err.value.status == 400 and err.value.reason == "Too Many Headers"
    partial = err.value.partial
    assert partial is not None and partial.method == "INVITE"
    assert partial.get("via") is not None and partial.get("cseq") is not None


def test_a_response_over_the_limit_has_no_partial(limit: int) -> None:
    top = TOP.replace(b"INVITE sip:+33612345678@127.0.1.10 SIP/2.0", b"SIP/2.0 200 OK")
    with pytest.raises(ParseError) as err:
        parse(message(257, top=top))
    assert err.value.reason == "Too Many Headers" and err.value.partial is None


def test_folded_lines_are_not_fields(limit: int) -> None:
    parse_module.configure(max_headers=40)
    folded = message(40, filler=b"X-Pad: 1\r\n 2\r\n\t3\r\n")  # 3 lines per field
    msg = parse(folded)
    assert len(msg.headers) == 40
    assert msg.headers[TOP_FIELDS].value == b"1 2 3"
    with pytest.raises(ParseError, match="Too Many Headers"):
        parse(message(41, filler=b"X-Pad: 1\r\n 2\r\n"))
    # the field past the limit comes after continuation lines of the last allowed one
    late = message(40, filler=b"X-Pad: 1\r\n").replace(
        b"Content-Length: 0\r\n", b"Content-Length: 0\r\n 0\r\nX-Late: 1\r\n"
    )
    with pytest.raises(ParseError, match="Too Many Headers"):
        parse(late)


def test_a_bad_request_line_with_too_many_headers_has_no_partial(limit: int) -> None:
    data = message(300).replace(b" SIP/2.0\r\n", b" SIP/2.0 x\r\n", 1)
    with pytest.raises(ParseError) as err:
        parse(data)
    assert err.value.partial is None


def test_the_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        parse_module.configure(max_headers=0)


def test_the_c_splitter_stops_past_max_lines() -> None:
    split = pytest.importorskip("pks.sip._split", reason="accelerator not built")
    data = message(41)
    parse(message(41))  # the parser learns every name first
    keys = parse_module._keys
    assert split.split_message(data, keys, "content-length", 41) is not None
    assert split.split_message(data, keys, "content-length", 40) is None
    assert split.split_message(data, keys, "content-length") is not None  # no limit
