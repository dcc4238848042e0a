"""Keepalive probes (Kamailio dispatcher's ``ds_ping_interval``): what to send and what counts.

Sans-IO. The proxy owns one :class:`ProbeSchedule` (a timer holder in its heap); every
``interval`` seconds it probes the destinations the mode selects, each with its own OPTIONS
client transaction. A probe is answered *alive* when its final code is in
:class:`AliveCodes` (default: any 2xx and 3xx, plus 401, 403, 404, 405 and 488 — a live stack
that merely refuses OPTIONS is alive); a timeout (no final within ``timeout`` seconds) or a
send failure counts as a failed probe.

Probe shape (as Kamailio's)::

    OPTIONS <destination URI> SIP/2.0
    Via: SIP/2.0/UDP <socket>;branch=z9hG4bK…;rport
    To: <destination URI>
    From: <ping_from>;tag=…
    CSeq: 10 OPTIONS
    Call-ID: …@<socket host>
    Max-Forwards: 70
    Content-Length: 0
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from pks.health.state import DestState
from pks.net import SocketInfo
from pks.sip import format_host
from pks.sip.via import via_start
from pks.transaction.wheel import PROBES

__all__ = ["AliveCodes", "ProbeConfig", "ProbeSchedule", "probe_request"]

ProbingMode = Literal["all", "inactive"]


@dataclass(frozen=True, slots=True)
class AliveCodes:
    """Which final codes of a probe prove the destination alive: exact codes and classes."""

    codes: frozenset[int] = frozenset({401, 403, 404, 405, 488})
    classes: frozenset[int] = frozenset({2, 3})

    @classmethod
    def parse(cls, text: str) -> AliveCodes:
        """``"2xx,3xx,401,404"`` → AliveCodes; ValueError naming a bad item."""
        codes: set[int] = set()
        classes: set[int] = set()
        for item in text.replace(";", ",").split(","):
            item = item.strip().lower()
            if not item:
                continue
            if len(item) == 3 and item.endswith("xx") and item[0] in "123456":
                classes.add(int(item[0]))
            elif item.isdigit() and 100 <= int(item) <= 699:
                codes.add(int(item))
            else:
                raise ValueError(f"{item!r} is not a code (100-699) or a class (2xx)")
        return cls(frozenset(codes), frozenset(classes))

    def __contains__(self, code: object) -> bool:
        return isinstance(code, int) and (code in self.codes or code // 100 in self.classes)

    def __str__(self) -> str:
        parts = [f"{c}xx" for c in sorted(self.classes)] + [str(c) for c in sorted(self.codes)]
        return ",".join(parts)


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """Probing settings (``PKS_DS_*``); ``interval`` 0 turns probing off."""

    interval: float = 10.0
    timeout: float = 5.0
    mode: ProbingMode = "all"
    ping_from: str = "sip:pks@localhost"
    alive: AliveCodes = field(default_factory=AliveCodes)


def probe_request(
    uri: str, sock: SocketInfo, from_uri: str, branch: str, call_id: str, tag: str
) -> bytes:
    """The OPTIONS keepalive for ``uri`` leaving by ``sock``."""
    host = format_host(sock.public_host)
    lines = (
        f"OPTIONS {uri} SIP/2.0",
        f"Via: {via_start(sock.proto.via_name, sock.public_host, sock.public_port)}{branch};rport",
        f"To: <{uri}>",
        f"From: <{from_uri}>;tag={tag}",
        "CSeq: 10 OPTIONS",
        f"Call-ID: {call_id}@{host}",
        "Max-Forwards: 70",
        "Content-Length: 0",
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class ProbeSchedule:
    """The probing timer: the next round, and the deadlines of probes in flight."""

    __slots__ = ("config", "next_round", "pending")
    timer_kind: ClassVar[int] = PROBES

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config
        self.next_round: float | None = None
        self.pending: dict[tuple[str, ...], tuple[DestState, float, float]] = {}
        # branch key → (destination, sent at, give up at)

    def start(self, now: float) -> None:
        if self.config.interval > 0:
            self.next_round = now

    def deadline(self) -> float | None:
        due = [d for _, _, d in self.pending.values()]
        if self.next_round is not None:
            due.append(self.next_round)
        return min(due) if due else None

    def round_due(self, now: float) -> bool:
        if self.next_round is None or self.next_round > now:
            return False
        self.next_round = now + self.config.interval
        return True

    def expired(self, now: float) -> Iterable[tuple[tuple[str, ...], DestState]]:
        gone = [(key, dest) for key, (dest, _, limit) in self.pending.items() if limit <= now]
        for key, _ in gone:
            del self.pending[key]
        return gone
