"""Keepalive probing (Kamailio dispatcher's ``ds_ping_interval``), beside the spine.

Every ``interval`` seconds the `Prober` sends an OPTIONS to each gateway the probing mode
selects (:mod:`pks.health.probe` says what is sent and which answers count as alive) and gives
each result to :class:`~pks.health.state.GatewayStates`. Sans-IO: its timer is the
`ProbeSchedule` in the core's `TimerHub` (kind ``PROBES``), its requests go out through the
`Sender` the spine gives it (``pks.forward.relay.Relay``: a client transaction each, whose
answer only the gateway it was sent to can give), and it learns how each ended through
``answered``/``lost``.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from typing import Any, Final, Protocol

from pks.dns.cache import DnsCache
from pks.health.probe import ProbeConfig, ProbeSchedule, probe_request
from pks.health.state import DestState, GatewayStates
from pks.net import Proto, SocketInfo
from pks.route.decision import Target
from pks.sip import Message

__all__ = ["Prober", "Sender"]

log: Final = logging.getLogger("pks.health")
Key = tuple[str, ...]


class Sender(Protocol):
    """What probing needs of the spine."""

    @property
    def prefix(self) -> str:
        """Our Via branches' prefix."""

    def next_id(self) -> str:
        """A fresh, unpredictable id."""

    def send_local(
        self,
        key: Key,
        data: bytes,
        target: Target,
        sock: SocketInfo,
        owner: Any,
        now: float,
        out: list[Any],
    ) -> object:
        """Send ``data`` in a client transaction; ``owner.answered``/``lost`` hear the end."""

    def forget(self, key: Key) -> None:
        """Drop a request we gave up on."""


class Sockets(Protocol):
    def pick(self, name: str | None, proto: Proto, inbound: SocketInfo | None) -> SocketInfo | None:
        """The socket to send from."""


class Prober:
    """The probing of every gateway of the live snapshot."""

    def __init__(
        self,
        config: ProbeConfig,
        gateways: GatewayStates,
        dns: DnsCache,
        sockets: Sockets,
        sender: Sender,
        stats: Counter[str],
    ) -> None:
        self.config = config
        self.gateways = gateways
        self.dns = dns
        self.sockets = sockets
        self.sender = sender
        self.stats = stats
        self.schedule = ProbeSchedule(config)
        self.wall_offset = 0.0  # wall-clock time - ``now`` (the server sets it), for displays

    def start(self, now: float) -> None:
        self.schedule.start(now)

    def on_timer(self, schedule: ProbeSchedule, now: float, out: list[Any]) -> None:
        """The schedule is due (a ``TimerHub`` handler): expire probes, start a round."""
        for key, dest in schedule.expired(now):
            self.sender.forget(key)
            self._result(dest, 408, "Request Timeout", None, now)
        if schedule.round_due(now) and self.gateways.ping_active:
            mode = self.config.mode
            for dest in self.gateways:
                if not dest.in_flight and dest.probed(mode):
                    self._send(dest, now, out)

    def _send(self, dest: DestState, now: float, out: list[Any]) -> None:
        target = dest.target
        if target.dns:
            found = self.dns.expand(target, now)
            if not found:
                self._result(dest, 503, "Name Does Not Resolve", None, now)
                return
            target = found[0]
        sock = self.sockets.pick(target.socket_name, target.proto, None)
        if sock is None:
            self._result(dest, 500, "Sending keepalive failed", None, now)
            return
        sender = self.sender
        branch_id = f"{sender.prefix}p{sender.next_id()}"
        call_id = f"pks-ping-{sender.next_id()}-{sender.prefix[-6:]}"
        from_uri = dest.ping_from or self.config.ping_from
        data = probe_request(target.uri, sock, from_uri, branch_id, call_id, secrets.token_hex(4))
        key = (branch_id, "OPTIONS")
        dest.in_flight = True
        self.schedule.pending[key] = (dest, now, now + self.config.timeout)
        sender.send_local(key, data, target, sock, self, now, out)

    def answered(self, key: Key, status: int, msg: Message, now: float) -> None:
        sent = self.schedule.pending.pop(key, None) if status >= 200 else None
        if sent is not None:
            self._result(sent[0], status, msg.reason or "", (now - sent[1]) * 1000.0, now)

    def lost(self, key: Key, code: int, now: float) -> None:
        """A probe timed out (408) or could not be sent (503 from the transport)."""
        sent = self.schedule.pending.pop(key, None)
        if sent is not None:
            if code == 408:
                self._result(sent[0], 408, "Request Timeout", None, now)
            else:
                self._result(sent[0], 500, "Sending keepalive failed", None, now)

    def _result(
        self, dest: DestState, code: int, reason: str, rtt_ms: float | None, now: float
    ) -> None:
        alive = rtt_ms is not None and code in self.config.alive
        self.gateways.probe_result(dest, code, reason, alive, rtt_ms, now + self.wall_offset)
        self.stats["probes"] += 1
