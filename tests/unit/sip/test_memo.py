"""The memo behind parse_uri / parse_name_addr: bounded, shared results, failures not kept."""

from __future__ import annotations

import pytest

from pks.sip import ParseError
from pks.sip.memo import Memo
from pks.sip.nameaddr import parse_name_addr
from pks.sip.uri import parse_uri


def test_memo_keeps_at_most_two_generations() -> None:
    memo: Memo[int] = Memo(4)
    for i in range(100):
        memo.put(f"k{i}", i)
        assert len(memo) <= 8
    assert memo.get("k99") == 99
    assert memo.get("k0") is None  # long gone
    assert memo.get("k96") == 96  # the recent generation
    assert memo.get("k93") == 93  # the older one (moved back to the recent one)
    memo.clear()
    assert len(memo) == 0 and memo.get("k99") is None


def test_memo_hit_in_the_older_generation_survives_the_next_turn() -> None:
    memo: Memo[str] = Memo(2)
    memo.put("a", "A")
    memo.put("b", "B")
    memo.put("c", "C")  # a, b are now the older generation
    assert memo.get("a") == "A"  # found there, moved back to the recent one
    memo.put("d", "D")  # the recent generation (c, a) turns old; b is dropped
    assert memo.get("a") == "A"
    assert memo.get("b") is None


def test_memo_keeps_falsy_values() -> None:
    memo: Memo[bool] = Memo(2)
    memo.put("x", False)
    assert memo.get("x") is False


def test_memo_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Memo(0)


def test_parses_are_shared_and_failures_are_not_remembered() -> None:
    text = "sip:+33612345678@127.0.1.10:5060;user=phone"
    assert parse_uri(text) is parse_uri(text)
    addr = '"Alice" <sip:alice@example.com>;tag=1928301774'
    assert parse_name_addr(addr) is parse_name_addr(addr)
    for _ in range(2):  # raised each time, never served from the memo
        with pytest.raises(ParseError):
            parse_uri("sip:bad host@x")
        with pytest.raises(ParseError):
            parse_name_addr('"unterminated <sip:a@b>')
