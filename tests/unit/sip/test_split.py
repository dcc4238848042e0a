"""The optional C message splitter (pks.sip._split) cuts exactly what the Python parser cuts.

Runs with the compiled core only (skipped when the accelerator is not built): every message of
the RFC 4475 torture set and a few made for the splitter's edges give the same (key, line,
value) triples, start-line end, body offset and Content-Length as the Python way
(``pks.sip.parse._split_headers`` and ``_content_length``), or None where the Python way must
decide (folding, a name not known yet, no colon, no empty line, an odd Content-Length).
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path

import pytest

from pks.sip import ParseError, parse

parse_module = importlib.import_module("pks.sip.parse")  # pks.sip.parse is the function

split = pytest.importorskip("pks.sip._split", reason="accelerator not built")

RFC4475 = Path(__file__).parents[2] / "conformance" / "rfc4475"

INVITE = (
    b"INVITE sip:+33612345678@127.0.1.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.1.1:5070;branch=z9hG4bK-1\r\n"
    b"v :  SIP/2.0/UDP 127.0.1.9;branch=z9hG4bK-0 \t\r\n"
    b"From: <sip:a@127.0.1.1>;tag=1\r\n"
    b"To: <sip:+33612345678@127.0.1.10>\r\n"
    b"Call-ID: c1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Max-Forwards: 70\r\n"
    b"Subject:\r\n"
    b"X-Odd: a\nb\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


Cut = tuple[list[tuple[str, bytes, bytes]], int, int, int]  # headers, first_end, body, length


def _python_way(data: bytes) -> Cut:
    end = data.find(b"\r\n\r\n")
    first_end = data.find(b"\r\n")
    head = data[first_end + 2 : end] if first_end < end else b""
    headers = parse_module._split_headers(head, parse_module.header_limit())
    length = parse_module._content_length(headers)
    triples = [(h.key, h.raw, h.value) for h in headers]
    return triples, first_end, end + 4, -1 if length is None else length


def _c_way(data: bytes, keys: dict[bytes, str] | None = None) -> Cut | None:
    keys = parse_module._keys if keys is None else keys
    flat = split.split_message(data, keys, "content-length")
    if flat is None:
        return None
    triples = [(flat[i], flat[i + 1], flat[i + 2]) for i in range(6, len(flat), 3)]
    return triples, flat[0], flat[1], flat[2]


def _same(data: bytes) -> bool:
    """Same result both ways; True when the C way answered (not None)."""
    try:
        expected = _python_way(data) if data.find(b"\r\n\r\n") >= 0 else None
    except ParseError:
        expected = None
    got = _c_way(data)
    if got is not None:
        assert got == expected
    return got is not None


def test_parse_uses_the_accelerator() -> None:
    assert parse_module._c_split is split.split_message


def test_a_usual_message_is_cut_like_python_does() -> None:
    parse(INVITE)  # learns every name
    assert _same(INVITE)
    triples, first_end, body, length = _c_way(INVITE) or ([], 0, 0, 0)
    assert INVITE[:first_end] == b"INVITE sip:+33612345678@127.0.1.10 SIP/2.0"
    assert length == 4
    assert triples[1] == ("via", b"v :  SIP/2.0/UDP 127.0.1.9;branch=z9hG4bK-0 \t", triples[1][2])
    assert triples[1][2] == b"SIP/2.0/UDP 127.0.1.9;branch=z9hG4bK-0"
    assert triples[7] == ("subject", b"Subject:", b"")
    assert triples[8][1] == b"X-Odd: a\nb"  # a bare LF stays inside its line
    assert INVITE[body:] == b"v=0\n"
    assert parse(INVITE).to_bytes() == INVITE


def test_every_rfc4475_message_is_cut_like_python_does() -> None:
    files = sorted(RFC4475.glob("*.sip"))
    assert len(files) > 40
    answered = []
    for path in files:
        data = path.read_bytes()
        with contextlib.suppress(ParseError):
            parse(data)  # learns the names (or refuses the message)
        if _same(data):
            answered.append(path.stem)
    assert len(answered) > 20  # the C way answered most of them itself


@pytest.mark.parametrize(
    ("data", "why", "valid"),
    [
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n y\r\n\r\n", "folded line", True),
        (b"OPTIONS sip:a@b SIP/2.0\r\nX-Never-Seen-Before-9: 1\r\n\r\n", "unknown name", True),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia x\r\n\r\n", "no colon", False),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n", "no empty line", False),
        (b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\r\n\n", "no empty line either", False),
        (b"OPTIONS sip:a@b SIP/2.0", "no line at all", False),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab", "2 lengths", False),
        (b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n", "not a number", False),
        (b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n\r\n", "no number", False),
        (b"OPTIONS sip:a@b SIP/2.0\r\nl: 1234567890123456\r\n\r\n", "too many digits", False),
    ],
)
def test_the_unusual_is_left_to_python(data: bytes, why: str, valid: bool) -> None:
    parse_module._keys.setdefault(b"Content-Length", "content-length")
    parse_module._keys.setdefault(b"l", "content-length")
    parse_module._keys.setdefault(b"Via", "via")
    assert _c_way(data) is None, why
    if valid:  # the Python way then parses it
        assert parse(data).to_bytes() == data
    else:
        with pytest.raises(ParseError):
            parse(data)


def test_no_header_line_and_the_body_offset() -> None:
    data = b"SIP/2.0 200 OK\r\n\r\nbody"
    assert _c_way(data) == ([], 14, 18, -1)
    msg = parse(data)
    assert msg.headers == [] and msg.body == b"body"


def test_many_names_long_and_alike_never_mix() -> None:
    # more names than the C table has slots, some longer than it keeps, some differing by case
    names = [f"X-Name-{i}".encode() for i in range(300)]
    names += [b"X-A-Very-Long-Header-Name-Beyond-The-Table-" + str(i).encode() for i in range(5)]
    names += [b"x-name-1", b"X-NAME-1", b"Via ", b"Via"]
    lines = b"".join(n + b": " + str(i).encode() + b"\r\n" for i, n in enumerate(names))
    data = b"SIP/2.0 200 OK\r\n" + lines + b"\r\n"
    parse_module.configure(max_headers=len(names))  # over the default bound (256) on purpose
    try:
        first = parse(data)  # learns them
        for _ in range(3):
            assert _same(data)
            again = parse(data)
            assert [(h.key, h.raw, h.value) for h in again.headers] == [
                (h.key, h.raw, h.value) for h in first.headers
            ]
    finally:
        parse_module.configure()
    assert {h.key for h in first.headers[-4:]} == {"x-name-1", "via"}


def test_bad_calls_raise() -> None:
    with pytest.raises(TypeError):
        split.split_message("abc", {}, "content-length")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        split.split_message(b"abc", {}, b"content-length")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        split.split_message(b"abc", {})  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b"SIP/2.0 200 OK", 200),
        (b"SIP/2.0 180 Ringing here", 180),
        (b"SIP/2.0 200", 200),
        (b"SIP/2.0 200 ", 200),
        (b"SIP/2.0 699  two blanks", 699),
        (b"SIP/2.0 2000 OK", 0),
        (b"SIP/2.0 099 Low", 0),
        (b"SIP/2.0 700 High", 0),
        (b"SIP/2.0 20x OK", 0),
        (b"SIP/3.0 200 OK", 0),
        (b"SIP/2.0x 200 OK", 0),
        (b"SIP/2.0 INVITE sip:a@b", 0),
        (b"INVITE sip:a@b SIP/2.0", -1),
        (b"NEWMETHOD sip:a@b SIP/2.0", -1),
        (b"INVITE  sip:a@b SIP/2.0", 0),
        (b"INVITE sip:a@b  SIP/2.0", 0),
        (b" INVITE sip:a@b SIP/2.0", 0),
        (b"INVITE sip:a@b SIP/2.0 ", 0),
        (b"INVITE sip:a@b SIP/2.1", 0),
        (b"INVITE sip:a@b", 0),
        (b"INVITE", 0),
        (b"", 0),
    ],
)
def test_the_start_line_is_read_like_python_does(line: bytes, kind: int) -> None:
    data = line + b"\r\nCall-ID: x\r\n\r\n"
    parse_module._keys.setdefault(b"Call-ID", "call-id")
    flat = split.split_message(data, parse_module._keys, "content-length")
    assert flat is not None and flat[3] == kind
    try:
        expected = parse_module._start_line(line)
    except ParseError as exc:
        with pytest.raises(ParseError) as raised:
            parse(data)
        assert raised.value.status == exc.status
        assert kind <= 0  # a status the C way read is one the Python way accepts
        return
    msg = parse(data)
    assert (msg.method, msg.ruri, msg.status, msg.reason) == expected
    assert msg.to_bytes() == data


def _fresh(text: str) -> str:
    """An equal str that is no other object (not interned): freed with its last reference."""
    return "".join(list(text))


def test_the_table_holds_its_keys_whatever_the_dict_does_after() -> None:
    """The C table keeps its own reference to every key it hands out: a dict that shrinks (here
    cleared, then dropped) never frees a key under it, and the answers stay the dict's."""
    data = b"SIP/2.0 200 OK\r\nVia: a\r\nCall-ID: b\r\n\r\n"
    keys = {b"Via": _fresh("via"), b"Call-ID": _fresh("call-id")}
    first = _c_way(data, keys)
    assert first is not None and [k for k, _, _ in first[0]] == ["via", "call-id"]
    keys.clear()  # the dict shrinks: only the table still holds those keys
    again = _c_way(data, keys)
    assert again == first  # the same dict: its earlier answers still stand
    del keys
    assert _c_way(data, {}) is None  # another dict: none of the first one's answers
    split.forget()
    parse(data)  # the parser's own table, as before
    assert _same(data)


def test_answers_come_from_the_dict_given() -> None:
    data = b"SIP/2.0 200 OK\r\nVia: a\r\n\r\n"
    mine = {b"Via": "mine"}
    assert (_c_way(data, mine) or ([],))[0] == [("mine", b"Via: a", b"a")]
    theirs = {b"Via": "theirs"}
    assert (_c_way(data, theirs) or ([],))[0] == [("theirs", b"Via: a", b"a")]
    mine[b"Via"] = "remapped"  # not the parser's way (a name's key is fixed): forget() first
    split.forget()
    assert (_c_way(data, mine) or ([],))[0] == [("remapped", b"Via: a", b"a")]
