"""Strangers leave nothing behind: with a rate rule for known peers only, a stranger's
packets are not counted — no entry kept per spoofed source (docs/security.md)."""

from __future__ import annotations

from pks.guard.shield import Shield


def test_a_stranger_is_not_counted_when_only_peers_are_rate_limited() -> None:
    shield = Shield(limit=0, peer_limit=5)
    known = {"10.0.0.1"}.__contains__
    for n in range(1000):
        assert not shield.stops(f"192.0.2.{n % 250}", b"INVITE sip:x SIP/2.0\r\n", 1.0, known)
    assert shield._counts == {}
    for _ in range(5):
        assert not shield.stops("10.0.0.1", b"INVITE sip:x SIP/2.0\r\n", 1.0, known)
    assert shield.stops("10.0.0.1", b"INVITE sip:x SIP/2.0\r\n", 1.0, known)  # the 6th: banned
