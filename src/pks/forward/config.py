"""What the core needs from the settings (see ``pks.config.Settings`` for the meaning).

One frozen value, built by the server from the settings; the spine (`pks.proxy`), the relay
(`pks.forward.relay`) and the prober (`pks.health.prober`) read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pks.health.probe import ProbeConfig
from pks.route.stages import DEFAULT_POLICY, Policy
from pks.transaction import Timers

__all__ = ["CoreConfig"]


@dataclass(frozen=True, slots=True)
class CoreConfig:
    fr_timer: float = 5.0
    fr_inv_timer: float = 120.0
    failover_codes: frozenset[int] = frozenset({408, 500, 503})
    reject_unknown: bool = False
    max_forwards: int = 70
    server_header: str = "pks-sip-proxy"
    default_socket: str | None = None
    timers: Timers = field(default_factory=Timers)
    probe: ProbeConfig = field(default_factory=lambda: ProbeConfig(interval=0.0))
    probing_threshold: int = 3
    inactive_threshold: int = 2
    call_max_duration: float = 14400.0
    policy: Policy = DEFAULT_POLICY
    # signs our Record-Route (shared by every instance of a cluster); empty: a random one
    secret: bytes = b""
    max_transactions: int = 20000  # requests relayed and unanswered; over it new ones get 503
    retry_after: int = 5  # seconds, in the 503 of a full proxy
    # flood and fraud (pks.guard.shield, pks.route.fraud; 0: rule off)
    rate_limit: int = 0  # requests per rate_window from a stranger before a ban
    rate_peer_limit: int = 0  # the same for a known peer
    rate_window: float = 2.0
    ban_time: float = 300.0
    intl_prefixes: tuple[str, ...] = ("00", "+")  # a number starting so is international
    local_prefixes: tuple[str, ...] = ()  # ... unless it starts so (the home country)
