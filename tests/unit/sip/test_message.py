"""Step ② in detail: start lines, header names, lists, folding, URIs, name-addr, Via, edits."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pks.sip import ParseError, parse, parse_name_addr, parse_uri, parse_via, response

INVITE = (
    b"INVITE sip:+33123@gw.example.net;user=phone SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport,"
    b" SIP/2.0/TCP [2001:db8::1];branch=z9hG4bKb\r\n"
    b"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKc;received=192.0.2.9\r\n"
    b'f: "Alice" <sip:alice@example.com>;tag=a1\r\n'
    b"t: sip:bob@example.com\r\n"
    b"i: abc@10.0.0.1\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"m: <sip:alice@10.0.0.1:5062;transport=udp>;expires=60\r\n"
    b"Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\n"
    b"X-Custom:   kept   as is  \r\n"
    b"l: 4\r\n\r\nbody"
)


def test_compact_forms_lists_and_folding() -> None:
    msg = parse(INVITE)
    assert msg.method == "INVITE" and msg.is_request
    assert [v.transport for v in msg.vias] == ["UDP", "TCP", "UDP"]
    assert msg.vias[1].host == "[2001:db8::1]" and msg.vias[1].host_bare == "2001:db8::1"
    assert msg.top_via.has_rport and msg.top_via.port == 5062
    assert msg.vias[2].received == "192.0.2.9"
    assert msg.from_.display == "Alice" and msg.from_tag == "a1" and msg.to_tag is None
    assert msg.call_id == "abc@10.0.0.1" and msg.cseq.number == 7
    assert msg.contacts[0].param("expires") == "60"
    assert [r.uri.host for r in msg.routes] == ["p1.example.com", "p2.example.com"]
    assert msg.body == b"body"


def test_a_header_folded_thousands_of_times_keeps_its_bytes_and_value() -> None:
    # each header's lines are joined once (folding line by line was quadratic)
    head = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nSubject: a"
    data = head + b"\r\n  x\t" * 12_000 + b"\r\n \r\nCall-ID: c\r\nl: 0\r\n\r\n"
    msg = parse(data)
    subject = [h for h in msg.headers if h.key == "subject"]
    assert len(subject) == 1 and subject[0].value == b"a" + b" x" * 12_000
    assert subject[0].raw == b"Subject: a" + b"\r\n  x\t" * 12_000 + b"\r\n "
    assert msg.call_id == "c" and msg.to_bytes() == data


def test_untouched_message_is_byte_identical() -> None:
    assert parse(INVITE).to_bytes() == INVITE


def test_edits_leave_other_headers_byte_identical() -> None:
    msg = parse(INVITE).copy()
    msg.prepend("via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKnew")
    msg.replace_first_value("route", None)
    msg.set("max-forwards", "69")
    out = msg.to_bytes()
    assert out.startswith(
        b"INVITE sip:+33123@gw.example.net;user=phone SIP/2.0\r\nVia: SIP/2.0/UDP 192"
    )
    assert b"X-Custom:   kept   as is  \r\n" in out
    assert b'f: "Alice" <sip:alice@example.com>;tag=a1\r\n' in out
    reparsed = parse(out)
    assert [r.uri.host for r in reparsed.routes] == ["p2.example.com"]
    assert reparsed.max_forwards == 69 and len(reparsed.vias) == 4


def test_uri_parts() -> None:
    uri = parse_uri("sips:user:pw@[2001:db8::2]:5061;transport=tcp;lr?Subject=x")
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "user",
        "pw",
        "[2001:db8::2]",
        5061,
    )
    assert uri.transport == "tcp" and uri.has_param("lr") and uri.headers == "Subject=x"
    assert parse_uri("tel:+331234").scheme == "tel"
    for bad in ("sip:", "sip:user@", "sip:host:99999", "sip:ho st", "nocolon"):
        with pytest.raises(ParseError):
            parse_uri(bad)


def test_name_addr_forms() -> None:
    assert parse_name_addr("sip:a@b;tag=1").tag == "1"
    assert not parse_name_addr("sip:a@b;tag=1").uri.params
    assert parse_name_addr("Bob <sip:b@c>").display == "Bob"
    with pytest.raises(ParseError):
        parse_name_addr('"unterminated <sip:b@c>')


def test_via_errors() -> None:
    assert parse_via("SIP/2.0/UDP 1.2.3.4").port is None
    for bad in ("SIP/2.0 1.2.3.4", "SIP/2.0/UDP", "SIP/2.0/UDP h;;"):
        with pytest.raises(ParseError):
            parse_via(bad)


def test_response_and_version_errors() -> None:
    resp = parse(b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n\r\n")
    assert resp.status == 180 and resp.reason == "Ringing" and not resp.is_request
    with pytest.raises(ParseError) as exc:
        parse(b"INVITE sip:a@b SIP/3.0\r\nVia: SIP/2.0/UDP h\r\n\r\n")
    assert exc.value.status == 505 and exc.value.partial is not None


def test_methods_are_checked_every_time_and_kept_as_written() -> None:
    for _ in range(2):  # the second parse takes the method from the cache of checked ones
        assert parse(b"FOO sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n").method == "FOO"
        with pytest.raises(ParseError, match="bad method"):
            parse(b"IN(VITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\n")


def test_a_header_name_without_colon_is_refused() -> None:
    ok = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n"
    assert parse(ok + b"\r\n").method == "OPTIONS"  # "Via" is now a known raw name
    with pytest.raises(ParseError, match="without a name"):
        parse(ok + b"Via\r\n\r\n")


def test_local_response_copies_headers_and_adds_to_tag() -> None:
    msg = parse(INVITE)
    out = parse(response(msg, 404, top_via="SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKa;rport=9"))
    assert out.status == 404 and out.top_via.rport == 9 and len(out.vias) == 3
    assert out.to_tag is not None and out.call_id == msg.call_id and out.cseq == msg.cseq
    assert parse(response(msg, 404)).to_tag == out.to_tag  # stable for retransmissions


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_raise_parse_error(data: bytes) -> None:
    try:
        msg = parse(data)
    except ParseError:
        return
    for view in ("vias", "from_", "to", "cseq", "contacts", "routes", "max_forwards"):
        with contextlib.suppress(ParseError):
            getattr(msg, view)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(INVITE)), st.binary(min_size=1, max_size=3))
def test_mutated_invite_only_raises_parse_error(pos: int, junk: bytes) -> None:
    data = INVITE[:pos] + junk + INVITE[pos:]
    try:
        msg = parse(data)
        _ = (msg.vias, msg.from_, msg.to, msg.cseq, msg.contacts, msg.routes, msg.uri)
    except ParseError:
        pass


def test_non_ascii_digits_are_not_numbers() -> None:
    bad = INVITE.replace(b"CSeq: 7 INVITE", b"CSeq: \xb2 INVITE")
    with pytest.raises(ParseError):
        _ = parse(bad).cseq
    with pytest.raises(ParseError):
        parse_uri("sip:host:\u00b2")


def test_parsed_values_compare_and_hash_by_their_fields() -> None:
    # Via, NameAddr, CSeq are Records: value semantics, like the frozen dataclasses they were
    text = "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport"
    a, b = parse_via(text), parse_via(" " + text)
    assert a is not b and a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != parse_via(text.replace("bKx", "bKy")) and a != text
    assert repr(a).startswith("Via('UDP', '10.0.0.1', 5060,")
    assert parse_name_addr("<sip:a@b>;tag=1") == parse_name_addr("<sip:a@b>;tag=1")
    assert parse_name_addr("<sip:a@b>;tag=1") != parse_name_addr("<sip:a@b>;tag=2")
    cseq = parse(INVITE).cseq
    assert (cseq.number, cseq.method) == (7, "INVITE") and cseq == parse(INVITE).cseq
