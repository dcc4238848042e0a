"""Bans and the per-source request rate (Kamailio's pike + an ``ipban`` htable), at the gate.

Both act before anything is parsed, like the stranger check they sit in front of:

* **bans** — a host or network (IPv4, IPv6) whose packets and connections get nothing until
  the ban expires. Three origins, merged into one lookup: the ``pks_ban`` table (the
  operator's, through the snapshot), the bans this process decided (``auto``) and those the
  cluster decided (``cluster``, from Redis: :mod:`pks.cluster`). Exact hosts sit in a dict
  (one probe), networks in a short tuple walked once per host and remembered (a bounded memo,
  cleared when the list changes).
* **rate** — requests (a datagram or TCP message that does not start with ``SIP/``) per
  ``window`` seconds from one host, counted in a dict emptied at each window's end (bounded:
  past ``TRACKED`` hosts in one window, new hosts are not counted). Over ``limit`` (a
  stranger) or ``peer_limit`` (a known peer: an ``address`` row's network or a gateway) the
  host is banned for ``ban_time`` seconds; 0 turns the rule off for that kind of source.

Every ban and unban is logged once, at WARNING on ``pks.ban``, in a line fail2ban reads
(docs/fail2ban/): ``ban HOST for N s: why`` / ``unban HOST: why``. Expiries are Unix times
(``now + wall_offset``), so that instances and Redis agree on them.

With no ban and no rate limit, ``active`` is False and the proxy never calls in: the whole
cost is one attribute test per packet.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Callable, Iterable
from typing import Final

from pks.route.fraud import parse_ban_address

__all__ = ["Ban", "Shield", "parse_ban_address"]

log: Final = logging.getLogger("pks.ban")
TRACKED: Final = 65536  # hosts counted per window at most
MEMO: Final = 65536  # hosts whose network verdict is remembered
NEVER: Final = math.inf

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Ban:
    """One ban: ``address`` (a host or a network), ``expires`` (Unix time, ``inf`` never),
    ``reason`` and ``origin`` (``table``, ``auto`` or ``cluster``)."""

    __slots__ = ("address", "created", "expires", "origin", "reason")

    def __init__(
        self, address: str, expires: float, reason: str, origin: str, created: float = 0.0
    ) -> None:
        self.address = address
        self.expires = expires
        self.reason = reason
        self.origin = origin
        self.created = created

    def as_dict(self) -> dict[str, object]:
        return {
            "address": self.address,
            "reason": self.reason,
            "origin": self.origin,
            "created": int(self.created) if self.created else None,
            "expires": None if self.expires == NEVER else int(self.expires),
        }


class Shield:
    """The ban list and the rate counter in front of the source gate."""

    __slots__ = (
        "_counts",
        "_exact",
        "_memo",
        "_nets",
        "_until",
        "active",
        "auto",
        "ban_time",
        "banned_drops",
        "bans_made",
        "cluster",
        "limit",
        "now",
        "on_ban",
        "peer_limit",
        "table",
        "wall_offset",
        "window",
    )

    def __init__(
        self, limit: int = 0, peer_limit: int = 0, window: float = 2.0, ban_time: float = 300.0
    ) -> None:
        self.limit = limit
        self.peer_limit = peer_limit
        self.window = window
        self.ban_time = ban_time
        self.wall_offset = 0.0  # Unix time - now (the proxy sets it)
        self.now = 0.0  # the last packet's now (for checks made without one: TCP accept)
        self.table: dict[str, Ban] = {}
        self.auto: dict[str, Ban] = {}  # decided here, by the rate rule
        self.cluster: dict[str, Ban] = {}  # decided by other instances (pks.cluster)
        self.on_ban: Callable[[Ban], None] | None = None  # the cluster sync's hook
        self._exact: dict[str, float] = {}
        self._nets: tuple[tuple[Network, float], ...] = ()
        self._memo: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._until = 0.0
        self.banned_drops = 0  # packets and connections dropped for a ban
        self.bans_made = 0  # bans decided here by the rate rule
        self.active = False
        self._rebuild()

    @property
    def rate_limited(self) -> bool:
        return self.limit > 0 or self.peer_limit > 0

    # ---- the packet path (compiled with the core) ------------------------------------------
    def stops(self, host: str, data: bytes, now: float, known: Callable[[str], bool]) -> bool:
        """Drop this packet from ``host``? Counts it, and bans the host over its limit."""
        self.now = now
        if self.banned(host, now):
            self.banned_drops += 1
            return True
        if not (self.limit or self.peer_limit) or data.startswith(b"SIP/"):
            return False
        most = self.peer_limit if known(host) else self.limit
        if most <= 0:  # no rule for this kind of source: nothing counted, nothing kept
            return False
        if now >= self._until:
            self._counts.clear()
            self._until = now + self.window
        counts = self._counts
        seen = counts.get(host)
        if seen is None:
            if len(counts) >= TRACKED:
                return False
            seen = 0
        seen += 1
        counts[host] = seen
        if seen <= most:
            return False
        why = f"{seen} requests in {self.window:g} s (limit {most})"
        self._ban_auto(host, now, why)
        self.banned_drops += 1
        return True

    def banned(self, host: str, now: float) -> bool:
        """Is ``host`` under a ban that has not expired?"""
        expires = self._exact.get(host)
        if expires is None:
            if not self._nets:
                return False
            expires = self._memo.get(host)
            if expires is None:
                expires = self._net_expiry(host)
                if len(self._memo) < MEMO:
                    self._memo[host] = expires
        return expires > now + self.wall_offset

    def _net_expiry(self, host: str) -> float:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return 0.0
        latest = 0.0
        for net, expires in self._nets:
            if ip.version == net.version and ip in net and expires > latest:
                latest = expires
        return latest

    # ---- changes (beside the packet path) ----------------------------------------------------
    def _ban_auto(self, host: str, now: float, why: str) -> None:
        wall = now + self.wall_offset
        ban = Ban(host, wall + self.ban_time, why, "auto", wall)
        self.auto[host] = ban
        self.bans_made += 1
        self._exact[host] = ban.expires  # at once; the memo of networks is unaffected
        self.active = True
        log.warning("ban %s for %.0f s: %s", host, self.ban_time, why)
        if self.on_ban is not None:
            self.on_ban(ban)

    def set_table(self, bans: Iterable[Ban]) -> None:
        """The ``pks_ban`` rows of a new snapshot; each change logged once."""
        new = {ban.address: ban for ban in bans}
        self._announce(self.table, new, "table")
        self.table = new
        self._rebuild()

    def set_cluster(self, bans: dict[str, Ban]) -> None:
        """The bans other instances decided (without this instance's own)."""
        fresh = {a: b for a, b in bans.items() if a not in self.auto}
        self._announce(self.cluster, fresh, "cluster")
        self.cluster = fresh
        self._rebuild()

    def lift(self, address: str) -> bool:
        """End an automatic ban now (``pks ban rm``); True if there was one."""
        ban = self.auto.pop(address, None) or self.cluster.pop(address, None)
        if ban is None:
            return False
        log.warning("unban %s: lifted by the operator", address)
        self._rebuild()
        return True

    def sweep(self, now: float) -> None:
        """Forget the bans that expired (logging each once); the server calls it every
        second or so."""
        wall = now + self.wall_offset
        gone = False
        for bans in (self.auto, self.cluster, self.table):
            for address in [a for a, b in bans.items() if b.expires <= wall]:
                ban = bans.pop(address)
                if ban.origin != "cluster":  # the deciding instance logs it
                    log.warning("unban %s: the %s ban expired", address, ban.origin)
                gone = True
        if gone:
            self._rebuild()

    def _announce(self, old: dict[str, Ban], new: dict[str, Ban], origin: str) -> None:
        for address, ban in new.items():
            if address not in old or old[address].expires != ban.expires:
                until = "for ever" if ban.expires == NEVER else f"until {ban.expires:.0f}"
                log.warning("ban %s %s: %s (%s)", address, until, ban.reason or "-", origin)
        for address in old.keys() - new.keys():
            log.warning("unban %s: removed (%s)", address, origin)

    def _rebuild(self) -> None:
        exact: dict[str, float] = {}
        nets: list[tuple[Network, float]] = []
        for bans in (self.table, self.cluster, self.auto):
            for ban in bans.values():
                if "/" in ban.address:
                    nets.append((ipaddress.ip_network(ban.address), ban.expires))
                elif ban.expires > exact.get(ban.address, 0.0):
                    exact[ban.address] = ban.expires
        self._exact = exact
        self._nets = tuple(nets)
        self._memo = {}
        self.active = bool(exact or nets) or self.rate_limited

    # ---- views --------------------------------------------------------------------------------
    def bans(self) -> list[Ban]:
        """Every ban in force, the table's first."""
        out = [*self.table.values(), *self.auto.values(), *self.cluster.values()]
        return sorted(out, key=lambda b: (b.origin != "table", b.address))

    def figures(self) -> dict[str, object]:
        return {
            "bans": len(self.table) + len(self.auto) + len(self.cluster),
            "bans_table": len(self.table),
            "bans_auto": len(self.auto),
            "bans_cluster": len(self.cluster),
            "bans_made": self.bans_made,
            "dropped_banned": self.banned_drops,
            "rate_limit": self.limit,
            "rate_peer_limit": self.peer_limit,
            "rate_window": self.window,
            "sources_counted": len(self._counts),
        }
