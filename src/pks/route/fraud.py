"""Step ⑤ helpers against floods and fraud: blocked destination prefixes, calls per second
(``pks_peer.max_cps``, ``maxcps=`` per gateway) and concurrent international calls
(``pks_peer.max_intl_calls``).

The rules are compiled once, when a snapshot is built (:func:`compile_rules`): a
:class:`Blocks` index keyed by prefix (one dict probe per distinct prefix length, like the
dialplan's literal prefixes) and dicts of limits. A snapshot without any of them carries
``rules = None`` and ``route()`` pays one test.

The counters are run-time state, outside the snapshot: :class:`CallRates` counts the calls
let through in the current second (Unix seconds: ``now + wall_offset``, so that instances
agree on the window), per key (a peer's tag, a gateway's URI). With a cluster
(:mod:`pks.cluster`), ``others`` holds what the other instances let through in the same
second, pulled from Redis every ~100 ms; it is added to the local count, never waited for.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Final, Protocol

from pks.route.rows import BlockRow, PeerRow

__all__ = [
    "BlockRule",
    "Blocks",
    "CallRates",
    "FraudRules",
    "Limits",
    "RateShare",
    "compile_rules",
    "parse_ban_address",
    "parse_prefix",
]

_PREFIX_CHARS: Final = frozenset("0123456789+*#")


class BlockRule:
    """A blocked prefix: ``tag`` None for every peer; ``reason`` goes into the 403's log."""

    __slots__ = ("id", "prefix", "reason", "tag")

    def __init__(self, id: int, prefix: str, tag: str | None, reason: str) -> None:
        self.id = id
        self.prefix = prefix
        self.tag = tag
        self.reason = reason

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "prefix": self.prefix, "tag": self.tag, "reason": self.reason}


class Blocks:
    """Blocked prefixes, every peer's and each peer's own, found by the number's prefixes."""

    __slots__ = ("_all", "_lengths", "_peer", "rules")

    def __init__(self, rules: Iterable[BlockRule]) -> None:
        self.rules = tuple(rules)
        self._all: dict[str, BlockRule] = {}
        self._peer: dict[str, dict[str, BlockRule]] = {}
        for rule in self.rules:
            table = self._all if rule.tag is None else self._peer.setdefault(rule.tag, {})
            table.setdefault(rule.prefix, rule)
        self._lengths = tuple(sorted({len(r.prefix) for r in self.rules}))

    def find(self, tag: str | None, number: str) -> BlockRule | None:
        """The shortest blocked prefix of ``number`` for the peer ``tag`` (its own first)."""
        own = self._peer.get(tag) if tag is not None else None
        common = self._all
        size = len(number)
        for length in self._lengths:
            if length > size:
                break
            head = number[:length]
            if own is not None:
                rule = own.get(head)
                if rule is not None:
                    return rule
            rule = common.get(head)
            if rule is not None:
                return rule
        return None


def parse_ban_address(text: str) -> str:
    """``IP`` or ``IP/PREFIX`` (IPv4 or IPv6) in canonical form (a /32 or /128 is written as
    the bare address); ValueError naming the problem."""
    text = text.strip().strip("[]") if "/" not in text else text.strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text.replace("[", "").replace("]", ""), strict=False)
            if net.prefixlen == net.max_prefixlen:
                return str(net.network_address)
            return str(net)
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is neither an IP address nor a network (IP/PREFIX)") from None


def parse_prefix(text: str) -> str:
    """A blocked prefix as written in ``pks_block``: digits (and ``+``, ``*``, ``#``)."""
    prefix = text.strip()
    if not prefix or len(prefix) > 32 or not set(prefix) <= _PREFIX_CHARS:
        raise ValueError(f"prefix {text!r}: 1-32 digits, optionally with + * #")
    return prefix


class FraudRules:
    """What a snapshot holds for this stage (None in the snapshot when nothing is set)."""

    __slots__ = ("blocks", "gateway_cps", "intl_limits", "peer_cps")

    def __init__(
        self,
        blocks: Blocks | None,
        peer_cps: dict[str, int],
        gateway_cps: dict[str, int],
        intl_limits: dict[str, int],
    ) -> None:
        self.blocks = blocks
        self.peer_cps = peer_cps  # tag → max_cps
        self.gateway_cps = gateway_cps  # gateway URI → maxcps=
        self.intl_limits = intl_limits  # tag → max_intl_calls


def compile_rules(
    blocks: Iterable[BlockRow], peers: Iterable[PeerRow], gateway_cps: dict[str, int]
) -> tuple[FraudRules | None, list[str]]:
    """The snapshot's rules, and one problem line per bad row."""
    problems: list[str] = []
    rules = []
    for row in blocks:
        try:
            rules.append(BlockRule(row.id, parse_prefix(row.prefix), row.tag, row.reason))
        except ValueError as exc:
            problems.append(f"pks_block id {row.id}: {exc}")
    peer_list = list(peers)
    peer_cps = {p.tag: p.max_cps for p in peer_list if p.max_cps and p.max_cps > 0}
    intl = {p.tag: p.max_intl_calls for p in peer_list if p.max_intl_calls and p.max_intl_calls > 0}
    if not (rules or peer_cps or gateway_cps or intl):
        return None, problems
    return FraudRules(Blocks(rules) if rules else None, peer_cps, gateway_cps, intl), problems


class RateShare(Protocol):
    """The other worker processes' counts of the same second (pks.workers.shared.RateShare);
    None in a single process."""

    def others(self, key: str, second: int) -> int: ...
    def publish(self, key: str, second: int, count: int) -> None: ...


class CallRates:
    """Calls let through per key in the current second: this process's, the other workers'
    (``share``, read at once from shared memory) and the other instances' (``others``)."""

    __slots__ = ("_counts", "others", "others_second", "refused", "second", "share")

    def __init__(self) -> None:
        self.second = 0
        self._counts: dict[str, int] = {}
        self.others: dict[str, int] = {}  # the cluster's, without ours (pks.cluster)
        self.others_second = -1  # the second ``others`` counts
        self.refused: dict[str, int] = {}  # calls refused per key, since start
        self.share: RateShare | None = None

    def take(self, key: str, most: int, second: int) -> bool:
        """Let one more call through for ``key`` (limit ``most`` per second)?"""
        if second != self.second:
            self.second = second
            self._counts = {}
        mine = self._counts.get(key, 0)
        seen = mine
        if second == self.others_second:
            seen += self.others.get(key, 0)
        share = self.share
        if share is not None:
            seen += share.others(key, second)
        if seen >= most:
            self.refused[key] = self.refused.get(key, 0) + 1
            return False
        self._counts[key] = mine + 1
        if share is not None:
            share.publish(key, second, mine + 1)
        return True

    def full(self, key: str, most: int, second: int) -> bool:
        """Would ``take`` refuse? (Counts nothing.)"""
        seen = self._counts.get(key, 0) if second == self.second else 0
        if second == self.others_second:
            seen += self.others.get(key, 0)
        if self.share is not None:
            seen += self.share.others(key, second)
        return seen >= most

    def counts(self) -> dict[str, int]:
        """This instance's calls per key in ``second`` (for the cluster sync and /status)."""
        return self._counts

    def copy(self) -> CallRates:
        twin = CallRates()
        twin.second = self.second
        twin._counts = dict(self._counts)
        twin.others = self.others
        twin.others_second = self.others_second
        # no share: a twin's ``take`` must publish nothing (it counts for an explanation)
        return twin


class Limits:
    """The run-time side of the stage, handed to ``route()``: the rate counters, the open
    international calls per peer, what counts as international, and the wall-clock offset
    that turns ``now`` into the Unix second."""

    __slots__ = (
        "gateways",
        "intl_calls",
        "intl_prefixes",
        "local_prefixes",
        "peers",
        "wall_offset",
    )

    def __init__(
        self,
        intl_prefixes: tuple[str, ...] = ("00", "+"),
        local_prefixes: tuple[str, ...] = (),
        intl_calls: Callable[[str], int] | None = None,
    ) -> None:
        self.peers = CallRates()  # max_cps per peer tag
        self.gateways = CallRates()  # maxcps= per gateway URI
        self.wall_offset = 0.0
        self.intl_prefixes = intl_prefixes
        self.local_prefixes = local_prefixes
        self.intl_calls = intl_calls  # open international calls of a peer tag

    def second(self, now: float) -> int:
        return int(now + self.wall_offset)

    def international(self, number: str) -> bool:
        """Does ``number`` leave the country (an international prefix, not a local one)?"""
        if not number.startswith(self.intl_prefixes):
            return False
        return not (self.local_prefixes and number.startswith(self.local_prefixes))

    def copy(self) -> Limits:
        """A twin whose counting moves nothing of this one (``pks route explain``)."""
        twin = Limits(self.intl_prefixes, self.local_prefixes, self.intl_calls)
        twin.peers = self.peers.copy()
        twin.gateways = self.gateways.copy()
        twin.wall_offset = self.wall_offset
        return twin

    def figures(self) -> dict[str, object]:
        return {
            "cps_second": self.peers.second,
            "cps_peers": dict(self.peers.counts()) if self.peers.second else {},
            "cps_gateways": dict(self.gateways.counts()) if self.gateways.second else {},
            "cps_refused_peers": dict(self.peers.refused),
            "cps_refused_gateways": dict(self.gateways.refused),
        }
