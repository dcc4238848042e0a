"""Unit tests for pks.sip.framing: TCP stream → whole SIP messages (RFC 3261 §18.3, RFC 5626)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pks.sip.framing import FramingError, StreamFramer

BODY = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n\r\ns=-\r\n"  # CRLFCRLF inside the body


def message(headers: bytes = b"", body: bytes = b"", cl: bytes | None = None) -> bytes:
    if cl is None:
        cl = b"Content-Length: " + str(len(body)).encode()
    return (
        b"OPTIONS sip:alice@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
        b"Call-ID: abc\r\n" + headers + cl + b"\r\n\r\n" + body
    )


INVITE = message(b"Content-Type: application/sdp\r\n", BODY)
OPTIONS = message()


def test_one_message_in_one_chunk() -> None:
    framer = StreamFramer(65535)
    assert framer.feed(OPTIONS) == [OPTIONS]
    assert framer.pings == 0


def test_several_messages_in_one_chunk() -> None:
    framer = StreamFramer(65535)
    assert framer.feed(INVITE + OPTIONS + INVITE) == [INVITE, OPTIONS, INVITE]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 50])
def test_split_across_chunks(size: int) -> None:
    stream = INVITE + OPTIONS + INVITE
    framer = StreamFramer(65535)
    out: list[bytes] = []
    for start in range(0, len(stream), size):
        out += framer.feed(stream[start : start + size])
    assert out == [INVITE, OPTIONS, INVITE]


@given(
    st.lists(st.sampled_from([INVITE, OPTIONS, b"\r\n\r\n"]), max_size=6),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_any_chunking_gives_the_same_messages(parts: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(parts)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    framer = StreamFramer(65535)
    out: list[bytes] = []
    pings = 0
    for start, end in itertools.pairwise(bounds):
        out += framer.feed(stream[start:end])
        pings += framer.pings
    assert out == [part for part in parts if part != b"\r\n\r\n"]
    assert pings == parts.count(b"\r\n\r\n")


def test_body_containing_crlfcrlf_is_taken_by_length() -> None:
    framer = StreamFramer(65535)
    assert framer.feed(INVITE[:-5]) == []
    assert framer.feed(INVITE[-5:] + OPTIONS[:10]) == [INVITE]
    assert framer.feed(OPTIONS[10:]) == [OPTIONS]


@pytest.mark.parametrize(
    "cl",
    [
        b"l: 29",
        b"L:29",
        b"content-length : 29",
        b"CONTENT-LENGTH:\t29  ",
        b"Content-Length:\r\n 29",
    ],
)
def test_content_length_forms(cl: bytes) -> None:
    body = b"x" * 29
    msg = message(body=body, cl=cl)
    assert StreamFramer(65535).feed(msg + OPTIONS) == [msg, OPTIONS]


def test_headers_that_merely_start_with_l_are_not_content_length() -> None:
    msg = message(b"Location: sip:x\r\nl-foo: 3\r\n", b"abcd", cl=b"l: 4")
    assert StreamFramer(65535).feed(msg) == [msg]


def test_repeated_equal_content_length_is_accepted() -> None:
    msg = message(b"Content-Length: 2\r\n", b"ok", cl=b"l: 2")
    assert StreamFramer(65535).feed(msg) == [msg]


def test_ping_is_skipped_and_counted() -> None:
    framer = StreamFramer(65535)
    assert framer.feed(b"\r\n\r\n") == []
    assert framer.pings == 1
    assert framer.feed(b"\r\n\r\n\r\n\r\n" + OPTIONS) == [OPTIONS]
    assert framer.pings == 2
    assert framer.feed(OPTIONS) == [OPTIONS]
    assert framer.pings == 0


def test_ping_split_across_chunks() -> None:
    framer = StreamFramer(65535)
    pings = []
    for chunk in (b"\r", b"\n\r", b"\n", b"\r\n"):
        assert framer.feed(chunk) == []
        pings.append(framer.pings)
    assert pings == [0, 0, 1, 0]
    assert framer.feed(b"\r\n" + OPTIONS) == [OPTIONS]
    assert framer.pings == 1


def test_single_crlf_between_messages_is_not_a_ping() -> None:
    framer = StreamFramer(65535)
    assert framer.feed(OPTIONS + b"\r\n" + OPTIONS + b"\n" + OPTIONS) == [OPTIONS] * 3
    assert framer.pings == 0


def test_message_of_exactly_max_size_is_accepted() -> None:
    assert StreamFramer(len(INVITE)).feed(INVITE) == [INVITE]


def test_missing_content_length() -> None:
    with pytest.raises(FramingError, match="Content-Length missing"):
        StreamFramer(65535).feed(message(cl=b"Max-Forwards: 70"))


@pytest.mark.parametrize(
    ("cl", "error"),
    [
        (b"Content-Length: -1", "negative"),
        (b"Content-Length: abc", "not a number"),
        (b"Content-Length: ", "not a number"),
        (b"Content-Length: 1 2", "not a number"),
        (b"Content-Length: 2\r\nl: 3", "conflicting"),
    ],
)
def test_bad_content_length(cl: bytes, error: str) -> None:
    with pytest.raises(FramingError, match=error):
        StreamFramer(65535).feed(message(cl=cl))


def test_message_larger_than_max_is_refused_before_its_body_arrives() -> None:
    header = message(cl=b"Content-Length: 100000")
    with pytest.raises(FramingError, match="exceeds"):
        StreamFramer(65535).feed(header)


def test_endless_header_section_is_refused() -> None:
    framer = StreamFramer(2048)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    with pytest.raises(FramingError, match="header section longer"):
        for _ in range(100):
            framer.feed(b"X-Junk: " + b"a" * 50 + b"\r\n")


def test_error_carries_messages_framed_before_it() -> None:
    with pytest.raises(FramingError) as info:
        StreamFramer(65535).feed(OPTIONS + INVITE + message(cl=b"l: x"))
    assert info.value.messages == [OPTIONS, INVITE]
