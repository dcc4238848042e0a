"""The parser's bounds: a datagram of 7 500 header fields (58 KB, under PKS_MAX_MESSAGE_SIZE)
is refused at the header-count limit, for a small part of what reading it whole costs.

Unit level: the parser itself, no network (docs/security.md, "Message bounds")."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator

import pytest

from pks.sip import ParseError, parse

parse_module = importlib.import_module("pks.sip.parse")  # pks.sip.parse is the function

FLOOD = (
    b"INVITE sip:+33612345678@127.0.1.10 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.1.1:5070;branch=z9hG4bK-1\r\n"
    b"From: <sip:a@127.0.1.1>;tag=1\r\nTo: <sip:+33612345678@127.0.1.10>\r\n"
    b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
    + b"X-A: 1\r\n" * 7_500
    + b"Content-Length: 0\r\n\r\n"
)


@pytest.fixture(autouse=True)
def default_limit() -> Iterator[None]:
    parse_module.configure()
    yield
    parse_module.configure()


def best_of(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def refuse() -> None:
    with pytest.raises(ParseError) as err:
        parse(FLOOD)
    assert err.value.status == 400 and err.value.reason == "Too Many Headers"


def test_a_flood_of_header_fields_is_refused_cheaply() -> None:
    assert 55_000 < len(FLOOD) < 65_535
    refuse()
    refused = best_of(7, refuse)
    parse_module.configure(max_headers=10_000)
    whole = best_of(3, lambda: parse(FLOOD))  # what the same datagram cost without the bound
    assert refused * 3 < whole, (refused, whole)
