"""The source gate: a packet or a connection from a stranger is dropped before parsing.

Who is known: a host an ``address`` row allows (any port: the row's port is checked by
``route()`` for new requests), a gateway's IP literal, or an address a gateway's name
resolved to. Everything else costs one dictionary probe: no parsing, no reply, no state, no
log line — a counter, and one summary line per window when strangers were seen.

The answers are remembered per host (a bounded memo, cleared when the snapshot or the
resolved names change): a flood from spoofed sources fills the memo and then pays the full
check, which walks the subnets once.

In front of it stands the :class:`~pks.guard.shield.Shield` (``shield``): bans and the
per-source request rate, asked first when it has anything to do (``shield.active``).
"""

from __future__ import annotations

import logging
from typing import Final

from pks.dns.cache import DnsCache
from pks.forward.response import reply_bytes
from pks.guard.shield import NEVER, Ban, Shield
from pks.net import Inbound, Send, send_to
from pks.route.authorize import known_host
from pks.route.snapshot import Snapshot
from pks.sanity import check_request
from pks.sip import ParseError, parse

__all__ = ["SourceGate", "reject_stranger"]

log: Final = logging.getLogger("pks.guard")
MEMO: Final = 65536  # hosts remembered; then strangers are checked afresh
SEEN: Final = 4096  # strangers counted distinctly per window (for the summary)


class SourceGate:
    """``admits(host)`` for the live snapshot and the resolved gateway names."""

    __slots__ = (
        "_dns",
        "_dns_version",
        "_memo",
        "_seen",
        "_snapshot",
        "_until",
        "dropped",
        "shield",
        "window",
    )

    def __init__(self, dns: DnsCache, window: float = 10.0, shield: Shield | None = None) -> None:
        self._dns = dns
        self._dns_version = dns.version
        self._snapshot: Snapshot | None = None
        self._memo: dict[str, bool] = {}
        self._seen: set[str] = set()
        self._until = 0.0
        self.window = window
        self.dropped = 0  # packets and connections from strangers, since start
        self.shield = shield or Shield()

    def retarget(self, snapshot: Snapshot | None) -> None:
        """A new snapshot: who is known may have changed."""
        self._snapshot = snapshot
        self._memo.clear()
        if snapshot is not None:
            self.shield.set_table(
                Ban(
                    r.address,
                    NEVER if r.expires is None else float(r.expires),
                    r.reason,
                    "table",
                    float(r.created),
                )
                for r in snapshot.bans
            )

    def admits(self, host: str) -> bool:
        if self._dns.version != self._dns_version:
            self._dns_version = self._dns.version
            self._memo.clear()
        known = self._memo.get(host)
        if known is None:
            known = self._check(host)
            if len(self._memo) < MEMO:
                self._memo[host] = known
        return known

    def _check(self, host: str) -> bool:
        snap = self._snapshot
        if snap is None:
            return False
        if host in snap.gateway_hosts or host in self._dns.hosts:
            return True
        return known_host(snap.address, host)

    def drop(self, host: str, now: float) -> None:
        """Count one packet from a stranger; one summary line per window."""
        self.dropped += 1
        if len(self._seen) < SEEN:
            self._seen.add(host)
        if now >= self._until:
            self.report(now)

    def report(self, now: float) -> None:
        if self._seen:
            more = "+" if len(self._seen) >= SEEN else ""
            example = ", ".join(sorted(self._seen)[:3])
            log.info(
                "source gate: %d packets dropped so far; strangers in the last %.0f s: %d%s"
                " (e.g. %s)",
                *(self.dropped, self.window, len(self._seen), more, example),
            )
            self._seen.clear()
        self._until = now + self.window


def reject_stranger(data: bytes, inbound: Inbound, server: str) -> Send | None:
    """``PKS_UNKNOWN_SOURCE=reject``: 403 to a well-formed request from a stranger, never
    more bytes than it sent (no amplification toward a spoofed source); else nothing."""
    try:
        msg = parse(data, stream=inbound.socket.proto.reliable)
        if msg.method is None or msg.method == "ACK" or check_request(msg) is not None:
            return None
        reply = reply_bytes(msg, inbound, 403, "Forbidden", server)
    except ParseError:
        return None
    if len(reply) > len(data):
        return None
    return send_to(reply, inbound.source, inbound.socket, inbound.conn_id)
