"""The sans-IO spine: steps ② to ⑥ for every message, and the timers of calls in flight.

``Proxy.receive(data, inbound, now)`` parses (②), checks (③), matches or creates transactions
(④), routes new requests (⑤ authorize → look up → dispatch) and relays (⑥); it returns the
``Send`` effects for the transport. ``Proxy.on_timer(now)`` fires what is due and
``next_deadline()`` says when to call it again: the server arms one loop timer for that.
Nothing here touches a socket, a clock or the database; the routing snapshot is a reference
the server swaps on reload.

RFC 3261 §16 (stateful proxy, serial forking over the dispatcher's failover order), §17 via
``pks.transaction``, RFC 3581 (rport), RFC 6026 (2xx handling).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

from pks.dns.cache import DnsCache
from pks.forward.calls import CallTable
from pks.forward.context import Branch, LocalServer, ServerCtx
from pks.forward.dialog import NextHop, loose_route
from pks.forward.hop import ack_for, cancel_for
from pks.forward.nat import add_contact_alias, fix_top_via, reply_address
from pks.forward.request import DIALOG_CREATING, decrement_max_forwards, for_branch, via_value
from pks.forward.response import best, upstream_code
from pks.health.probe import ProbeConfig, ProbeSchedule, probe_request
from pks.health.state import DestState, GatewayStates
from pks.net import Inbound, Proto, Send, SocketInfo, address, send_to
from pks.route import Drop, Forward, Reply, authorize, route
from pks.route.decision import Target
from pks.route.snapshot import Snapshot
from pks.sanity import check_request, check_response
from pks.sip import Message, ParseError, Uri, parse, response
from pks.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    DeliverAck,
    Effect,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Terminated,
    TimedOut,
    Timers,
    TimerWheel,
    Transmit,
    TransportFailed,
)

log: Final = logging.getLogger("pks.proxy")

SCANNERS: Final = (
    b"friendly-scanner",
    b"sipvicious",
    b"sipcli",
    b"vaxsipuseragent",
    b"pplsip",
    b"sip-scan",
    b"sipscan",
    b"iwar",
    b"sundayddr",
    b"smap",
)
_SCANNER: Final = re.compile(b"|".join(re.escape(s) for s in SCANNERS), re.IGNORECASE)
_user_agents: Final[dict[bytes, bool]] = {}  # User-Agent values already searched → scanner or not
_ALIASED: Final = DIALOG_CREATING | {"UPDATE"}  # requests whose Contact gets the NAT alias
_CLASSES: Final = tuple(f"{n}xx" for n in range(7))  # stats keys of status codes 100..699
Holder = ServerCtx | Branch | LocalServer | ProbeSchedule | CallTable
Key = tuple[str, ...]


def _is_scanner(user_agent: bytes) -> bool:
    """A known scanner's User-Agent? Each value is searched once (peers repeat theirs)."""
    found = _user_agents.get(user_agent)
    if found is None:
        found = _SCANNER.search(user_agent) is not None
        if len(_user_agents) < 1024:
            _user_agents[user_agent] = found
    return found


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """What the core needs from the settings (see ``pks.config.Settings`` for the meaning)."""

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


class Proxy:
    """A stateful SIP proxy over a set of listening sockets and a routing snapshot."""

    def __init__(
        self,
        sockets: tuple[SocketInfo, ...],
        config: CoreConfig,
        snapshot: Snapshot | None = None,
        local_hosts: tuple[str, ...] = (),
        branch_prefix: str | None = None,
    ) -> None:
        self.sockets = sockets
        self.config = config
        self.stats: Counter[str] = Counter()
        self.gateways = GatewayStates(config.probing_threshold, config.inactive_threshold)
        self.prober = ProbeSchedule(config.probe)
        if config.probe.interval > 0:
            self.gateways.probing_mode = config.probe.mode
        self.calls = CallTable(self.gateways, config.call_max_duration)
        self.dns = DnsCache()  # named gateways' addresses, filled by the server's resolver
        self.wall_offset = 0.0  # wall-clock time - ``now`` (the server sets it), for displays
        self._snapshot: Snapshot | None = None
        self.snapshot = snapshot
        self._servers: dict[Key, ServerCtx | LocalServer] = {}
        self._branches: dict[Key, Branch] = {}
        self._timers: TimerWheel[Holder] = TimerWheel()
        self._seq = 0  # numbers our branches and probe Call-IDs (``_next_id``)
        # our Via branches start with it (worker processes put their index in it)
        self._prefix = branch_prefix or "z9hG4bKpks" + secrets.token_hex(3)
        self._me = self._my_addresses(local_hosts)

    # ---- public API -----------------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot | None:
        """The live routing snapshot; assigning one adopts its destinations' states."""
        return self._snapshot

    @snapshot.setter
    def snapshot(self, snapshot: Snapshot | None) -> None:
        self._snapshot = snapshot
        self.gateways.sync(snapshot)

    def receive(self, data: bytes, inbound: Inbound, now: float) -> list[Send]:
        """One message from the transport → what to send."""
        out: list[Send] = []
        try:
            msg = parse(data, stream=inbound.socket.proto.reliable)
        except ParseError as exc:
            self._parse_failed(exc, inbound, out)
            return out
        try:
            if msg.method is not None:
                self._request(msg, inbound, now, out)
            else:
                self._response(msg, inbound, now, out)
        except ParseError as exc:
            log.info("drop message from %s: %s", inbound.source, exc.reason)
        return out

    def start(self, now: float) -> list[Send]:
        """Begin the periodic work (the first probe round is due at once)."""
        self.prober.start(now)
        self._arm(self.prober)
        return []

    def limit_counts(self) -> dict[str, object]:
        """Calls counted against limits: per source peer tag and per gateway."""
        snap = self._snapshot
        limits = snap.peer_limits if snap is not None else {}
        return {
            "calls": len(self.calls),
            "peers": {
                tag: {"calls": self.calls.by_peer.get(tag, 0), "max_calls": limits.get(tag)}
                for tag in sorted(set(self.calls.by_peer) | set(limits))
            },
            "gateways": [
                {"setid": key[0], "uri": key[1], "socket": key[2], "calls": load}
                for key, load in self.gateways.loads()
            ],
        }

    def on_timer(self, now: float) -> list[Send]:
        """Fire every timer due at ``now``."""
        out: list[Send] = []
        for holder in self._timers.pop_due(now):
            if isinstance(holder, Branch) and self._branches.get(holder.key) is not holder:
                continue  # abandoned (an expired probe)
            due = holder.deadline()
            if due is not None and due <= now:
                self._fire(holder, now, out)
            self._arm(holder)
        return out

    def next_deadline(self) -> float | None:
        return self._timers.next_deadline()

    def send_failed(self, send: Send, reason: str, now: float) -> list[Send]:
        """The transport could not send ``send``: fail the branch it belongs to over."""
        out: list[Send] = []
        log.warning("cannot send to %s (%s): %s", send.dest, send.socket, reason)
        try:
            msg = parse(send.data)
            branch = self._branches.get(self._client_key(msg))
        except ParseError:
            return out
        if msg.method is not None and branch is not None:
            self._run_branch(branch, branch.txn.on_transport_error(now), None, None, now, out)
        return out

    @property
    def transactions(self) -> int:
        return len(self._servers) + len(self._branches)

    # ---- requests ---------------------------------------------------------------------------
    def _request(self, msg: Message, inbound: Inbound, now: float, out: list[Send]) -> None:
        self.stats["requests"] += 1
        rejected = check_request(msg)
        if rejected is not None:
            log.info("refuse %s from %s: %s", msg.method, inbound.source, rejected.reason)
            if msg.method != "ACK" and rejected.code:
                self._reply(msg, inbound, rejected.code, rejected.reason, out, rejected.extra)
            return
        ua = msg.get("user-agent")
        if ua is not None and _is_scanner(ua):
            log.info("drop %s from %s: scanner User-Agent %r", msg.method, inbound.source, ua)
            return
        key = self._server_key(msg)
        if msg.method == "ACK":
            self._ack(msg, key, inbound, now, out)
        elif msg.method == "CANCEL":
            self._cancel(msg, key, inbound, now, out)
        elif (holder := self._servers.get(key)) is not None:
            self._server_effects(holder, holder.txn.on_retransmission(now), out)
        elif msg.to_tag is not None:
            self._in_dialog(msg, key, inbound, now, out)
        else:
            self._initial(msg, key, inbound, now, out)

    def _initial(
        self, msg: Message, key: Key, inbound: Inbound, now: float, out: list[Send]
    ) -> None:
        src = inbound.source
        snap = self.snapshot
        if snap is None:
            self._reply(msg, inbound, 503, "Routing Not Loaded", out)
            return
        if authorize(snap, src.host, src.port) is None:
            log.info("drop %s from %s: unknown source %s", msg.method, src, src)
            if self.config.reject_unknown:
                self._reply(msg, inbound, 403, "Forbidden", out)
            return
        uri = msg.uri
        if msg.method == "OPTIONS" and uri.user is None and self._is_me(uri) is not None:
            self._reply(msg, inbound, 200, "OK", out, (("Allow", ALLOW),))
            return
        if msg.max_forwards == 0:
            log.info("refuse %s from %s: Max-Forwards 0", msg.method, src)
            self._reply(msg, inbound, 483, "Too Many Hops", out)
            return
        user = uri.user_decoded if uri.is_sip else None
        usable = None if self.gateways.all_usable else self.gateways.is_usable

        def hash_key(alg: str) -> str | None:
            if alg == "hash-callid":
                return msg.call_id
            if alg == "hash-from":
                return msg.from_.uri.user
            return user

        decision = self._limit(snap, route(snap, src.host, src.port, user, usable, hash_key))
        if isinstance(decision, Drop):
            log.info("drop %s from %s: %s", msg.method, src, decision.log)
        elif isinstance(decision, Reply):
            log.info("refuse %s from %s: %s → %d", msg.method, src, decision.log, decision.code)
            self._reply(msg, inbound, decision.code, decision.reason, out)
        else:
            assert isinstance(decision, Forward)
            base = self._prepare(msg, inbound, initial=True)
            ctx = self._open(msg, key, inbound, base, decision.targets, now)
            ctx.record_route = msg.method in DIALOG_CREATING
            ctx.user, ctx.setid = user, decision.setid
            if msg.method == "INVITE":
                ctx.call = self.calls.open(msg.call_id, msg.from_tag or "", decision.peer.tag)
            self._start(ctx, now, out)

    def _limit(self, snap: Snapshot, decision: Forward | Reply | Drop) -> Forward | Reply | Drop:
        """A source peer at its ``max_calls`` gets 503 for a new call."""
        if not isinstance(decision, Forward) or not snap.peer_limits:
            return decision
        tag = decision.peer.tag
        limit = snap.peer_limits.get(tag) if tag is not None else None
        if limit is not None and self.calls.peer_count(tag) >= limit:
            return Reply(503, "Service Unavailable", f"peer {tag} is at its {limit} calls")
        return decision

    def _in_dialog(
        self, msg: Message, key: Key, inbound: Inbound, now: float, out: list[Send]
    ) -> None:
        if msg.max_forwards == 0:
            self._reply(msg, inbound, 483, "Too Many Hops", out)
            return
        if msg.method == "BYE":
            self.calls.bye(msg.call_id, msg.from_tag, msg.to_tag)
        base = self._prepare(msg, inbound, initial=False)
        hop = loose_route(base, self._is_me)
        if isinstance(hop, str):
            log.info("refuse in-dialog %s from %s: %s → 404", msg.method, inbound.source, hop)
            self._reply(msg, inbound, 404, "Not Here", out)
            return
        ctx = self._open(msg, key, inbound, base, (self._hop_target(hop),), now)
        ctx.forced_socket = hop.socket
        self._start(ctx, now, out)

    def _ack(self, msg: Message, key: Key, inbound: Inbound, now: float, out: list[Send]) -> None:
        holder = self._servers.get(key)
        if isinstance(holder, ServerCtx) and isinstance(holder.txn, ServerInviteTransaction):
            effects = holder.txn.on_ack(now)
            self._server_effects(holder, effects, out)
            if not any(isinstance(e, DeliverAck) for e in effects):
                return
        if msg.to_tag is None:
            return
        fwd = self._prepare(msg, inbound, initial=False)
        hop = loose_route(fwd, self._is_me)
        if isinstance(hop, str):
            log.debug("drop ACK from %s: %s", inbound.source, hop)
            return
        sock = hop.socket or self._pick_socket(None, hop.proto, inbound.socket)
        if sock is None:
            return
        seed = msg.top_via.branch or msg.call_id
        branch = f"{self._prefix}a{hash(seed) & 0xFFFFFFFF}"
        fwd.prepend("via", via_value(sock, branch))
        out.append(send_to(fwd.to_bytes(), hop.dest, sock))

    def _cancel(
        self, msg: Message, key: Key, inbound: Inbound, now: float, out: list[Send]
    ) -> None:
        if (holder := self._servers.get(key)) is not None:
            self._server_effects(holder, holder.txn.on_retransmission(now), out)
            return
        ctx = self._servers.get((*key[:-1], "INVITE"))
        if not isinstance(ctx, ServerCtx):
            self._reply(msg, inbound, 481, "Call/Transaction Does Not Exist", out)
            return
        via = msg.top_via
        txn = ServerNonInviteTransaction(
            reliable=inbound.socket.proto.reliable, timers=self.config.timers
        )
        local = LocalServer(
            key, txn, inbound, reply_address(via, inbound.source, txn_reliable(inbound))
        )
        self._servers[key] = local
        data = self._response_bytes(msg, inbound, 200, "OK")
        self._server_effects(local, txn.send_response(200, data, now), out)
        self._cancel_ctx(ctx, now, out)

    # ---- contexts and branches --------------------------------------------------------------
    def _prepare(self, msg: Message, inbound: Inbound, initial: bool) -> Message:
        base = msg.copy()
        fixed = fix_top_via(msg.top_via, inbound.source)
        if fixed is not None:
            base.replace_first_value("via", fixed)
        decrement_max_forwards(base, self.config.max_forwards)
        if initial:
            base.remove("route")
        if msg.get("contact") is not None and msg.method in _ALIASED:
            add_contact_alias(base, inbound.source, inbound.socket.proto)
        return base

    def _open(
        self,
        msg: Message,
        key: Key,
        inbound: Inbound,
        base: Message,
        targets: tuple[Target, ...],
        now: float,
    ) -> ServerCtx:
        reliable = txn_reliable(inbound)
        txn: ServerInviteTransaction | ServerNonInviteTransaction
        if msg.method == "INVITE":
            txn = ServerInviteTransaction(reliable=reliable, timers=self.config.timers)
        else:
            txn = ServerNonInviteTransaction(reliable=reliable, timers=self.config.timers)
        reply_to = reply_address(msg.top_via, inbound.source, reliable)
        ctx = ServerCtx(key, msg, base, inbound, reply_to, txn, targets)
        self._servers[key] = ctx
        self.stats["created"] += 1
        return ctx

    def _start(self, ctx: ServerCtx, now: float, out: list[Send]) -> None:
        # the INVITE goes out first, its 100 Trying second: the callee starts working one
        # send earlier (no 100 once a final went upstream: no target, no socket)
        self._next_branch(ctx, now, out)
        if ctx.invite and not ctx.final_sent:
            self._local_reply(ctx, 100, "Trying", now, out, final=False)

    def _next_branch(self, ctx: ServerCtx, now: float, out: list[Send]) -> None:
        while ctx.next_target < len(ctx.targets):
            target = ctx.targets[ctx.next_target]
            if target.dns:
                at = ctx.next_target
                found = self.dns.expand(target, now)
                ctx.targets = ctx.targets[:at] + found + ctx.targets[at + 1 :]
                if not found:
                    log.info("%s: %s does not resolve, failing over", ctx.label, target.uri)
                    ctx.finals.append((503, None))
                    continue
                target = found[0]
            ctx.next_target += 1
            sock = ctx.forced_socket or self._pick_socket(
                target.socket_name, target.proto, ctx.inbound.socket
            )
            if sock is None:
                log.warning("%s: no %s socket for %s", ctx.label, target.proto.value, target.uri)
                ctx.finals.append((503, None))
                continue
            self._open_branch(ctx, target, sock, now, out)
            return
        self._finish(ctx, now, out)

    def _next_id(self) -> str:
        """A number not used before by this proxy, in decimal (``str`` of an int is the
        cheapest formatting compiled code has)."""
        self._seq += 1
        return str(self._seq)

    def _open_branch(
        self, ctx: ServerCtx, target: Target, sock: SocketInfo, now: float, out: list[Send]
    ) -> None:
        base = ctx.base
        if base is None:  # released: the final response went upstream
            return
        branch_id = self._prefix + self._next_id()
        sent = for_branch(base, ctx.inbound.socket, sock, branch_id, ctx.record_route)
        data = sent.to_bytes()
        reliable = target.proto.reliable
        method = ctx.method
        txn: ClientInviteTransaction | ClientNonInviteTransaction
        if ctx.invite:
            txn = ClientInviteTransaction(data, reliable=reliable, timers=self.config.timers)
        else:
            txn = ClientNonInviteTransaction(data, reliable=reliable, timers=self.config.timers)
        dest = target.dest
        branch = Branch((branch_id, method), ctx, txn, sent, dest, target.proto, sock, target)
        self._branches[branch.key] = branch
        ctx.branch = branch
        if ctx.call is not None:
            self.calls.use(ctx.call, target)
        ctx.fr_deadline = now + self.config.fr_timer
        self._arm(ctx)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s → %s via %s", ctx.label, dest, sock)
        self._run_branch(branch, txn.start(now), None, None, now, out)

    def _run_branch(
        self,
        branch: Branch,
        effects: list[Effect],
        msg: Message | None,
        src: Inbound | None,
        now: float,
        out: list[Send],
    ) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                out.append(send_to(effect.data, branch.dest, branch.socket))
            elif isinstance(effect, Deliver):
                if msg is None or src is None:
                    continue
                if branch.probe is not None:
                    self._probe_answered(branch, branch.probe, effect.status, msg, now)
                else:
                    self._branch_response(branch, effect.status, msg, src, now, out)
            elif isinstance(effect, TimedOut):
                self._branch_failed(branch, 408, "no final response (timer B/F)", now, out)
            elif isinstance(effect, TransportFailed):
                self._branch_failed(branch, 503, "transport failure", now, out)
            elif isinstance(effect, Terminated):
                self._branches.pop(branch.key, None)
                branch.ctx = None  # no ctx ↔ branch cycle left for the cyclic GC
        if branch.key in self._branches:
            self._arm(branch)

    def _branch_response(
        self, branch: Branch, status: int, msg: Message, src: Inbound, now: float, out: list[Send]
    ) -> None:
        ctx = branch.ctx
        if ctx is None:  # the answer to a CANCEL we sent
            return
        if status < 200:
            branch.provisional = True
            if branch.cancel_pending:
                self._send_cancel(branch, now, out)
            if branch.closed or ctx.final_sent:
                return
            if not ctx.cancelled:
                ctx.fr_deadline = now + self.config.fr_inv_timer
                self._arm(ctx)
            if status > 100:
                self._relay(ctx, msg, status, src, now, out)
            return
        if status < 300:
            self._relay(ctx, msg, status, src, now, out)
            return
        if branch.closed or ctx.final_sent:
            return
        branch.closed = True
        ctx.finals.append((status, msg))
        more = ctx.next_target < len(ctx.targets)
        if not ctx.cancelled and more and status in self.config.failover_codes:
            log.info("%s: %s answered %d, failing over", ctx.label, branch.dest, status)
            self._next_branch(ctx, now, out)
        else:
            self._finish(ctx, now, out)

    def _branch_failed(
        self, branch: Branch, code: int, why: str, now: float, out: list[Send]
    ) -> None:
        if branch.probe is not None:
            self._probe_lost(branch, branch.probe, code, now)
            return
        ctx = branch.ctx
        if ctx is None or branch.closed:
            return
        branch.closed = True
        ctx.finals.append((code, None))
        log.info("%s: %s failed: %s", ctx.label, branch.dest, why)
        target = branch.target
        if target is not None and target.setid and self.prober.config.interval:
            self.gateways.call_failed(target, why)
        if ctx.final_sent:
            return
        if not ctx.cancelled and ctx.branch is branch:
            self._next_branch(ctx, now, out)
        else:
            self._finish(ctx, now, out)

    def _fr_expired(self, ctx: ServerCtx, now: float, out: list[Send]) -> None:
        ctx.fr_deadline = None
        branch = ctx.branch
        if ctx.final_sent or branch is None:
            return
        if ctx.cancelled:
            self._local_reply(ctx, 487, "Request Terminated", now, out)
        elif not branch.provisional:
            branch.cancel_pending = True
            self._branch_failed(branch, 408, f"no answer within {self.config.fr_timer}s", now, out)
        else:
            log.info(
                "%s: no answer after ringing %ss, cancelling", ctx.label, self.config.fr_inv_timer
            )
            ctx.cancelled = True
            self._send_cancel(branch, now, out)
            self._local_reply(ctx, 408, "Request Timeout", now, out)

    def _cancel_ctx(self, ctx: ServerCtx, now: float, out: list[Send]) -> None:
        if ctx.final_sent or ctx.cancelled:
            return
        ctx.cancelled = True
        branch = ctx.branch
        if branch is not None and not branch.closed and branch.provisional:
            self._send_cancel(branch, now, out)
            ctx.fr_deadline = now + 64 * self.config.timers.t1
            self._arm(ctx)
            return
        if branch is not None:
            branch.cancel_pending = True
        self._local_reply(ctx, 487, "Request Terminated", now, out)

    def _send_cancel(self, branch: Branch, now: float, out: list[Send]) -> None:
        branch.cancel_pending = False
        if branch.sent is None:  # a final response arrived: nothing left to cancel
            return
        data = cancel_for(branch.sent)
        txn = ClientNonInviteTransaction(
            data, reliable=branch.proto.reliable, timers=self.config.timers
        )
        key = (branch.key[0], "CANCEL")
        cancel = Branch(key, None, txn, None, branch.dest, branch.proto, branch.socket)
        if cancel.key in self._branches:
            return
        self._branches[cancel.key] = cancel
        self._run_branch(cancel, txn.start(now), None, None, now, out)

    def _finish(self, ctx: ServerCtx, now: float, out: list[Send]) -> None:
        if ctx.final_sent:
            return
        if not ctx.finals:
            self._local_reply(ctx, 404, "Not Found", now, out)
            return
        status, msg = ctx.finals[best([code for code, _ in ctx.finals])]
        log.info("%s: final %d", ctx.label, status)
        if msg is None:
            self._local_reply(ctx, status, None, now, out)
        else:
            self._relay(ctx, msg, status, None, now, out)

    def _call_final(self, ctx: ServerCtx, code: int, now: float) -> None:
        call = ctx.call
        if call is None:
            return
        if code < 300:
            self.calls.answered(call, now)
            self._arm(self.calls)
        elif not call.answered:
            self.calls.close(call)

    # ---- keepalive probes ---------------------------------------------------------------------
    def _probe_round(self, now: float, out: list[Send]) -> None:
        prober = self.prober
        for key, dest in prober.expired(now):
            self._branches.pop(key, None)
            self._probe_result(dest, 408, "Request Timeout", None, now)
        if prober.round_due(now) and self.gateways.ping_active:
            mode = prober.config.mode
            for dest in self.gateways:
                if not dest.in_flight and dest.probed(mode):
                    self._send_probe(dest, now, out)

    def _send_probe(self, dest: DestState, now: float, out: list[Send]) -> None:
        target = dest.target
        if target.dns:
            found = self.dns.expand(target, now)
            if not found:
                self._probe_result(dest, 503, "Name Does Not Resolve", None, now)
                return
            target = found[0]
        sock = self._pick_socket(target.socket_name, target.proto, None)
        if sock is None:
            self._probe_result(dest, 500, "Sending keepalive failed", None, now)
            return
        branch_id = f"{self._prefix}p{self._next_id()}"
        data = probe_request(
            target.uri,
            sock,
            dest.ping_from or self.prober.config.ping_from,
            branch_id,
            f"pks-ping-{self._next_id()}-{self._prefix[-6:]}",
            secrets.token_hex(4),
        )
        txn = ClientNonInviteTransaction(
            data, reliable=target.proto.reliable, timers=self.config.timers
        )
        dest_addr = target.dest
        branch = Branch((branch_id, "OPTIONS"), None, txn, None, dest_addr,
                        target.proto, sock, target, probe=dest)  # fmt: skip
        self._branches[branch.key] = branch
        dest.in_flight = True
        self.prober.pending[branch.key] = (dest, now, now + self.prober.config.timeout)
        self._arm(self.prober)
        self._run_branch(branch, txn.start(now), None, None, now, out)

    def _probe_answered(
        self, branch: Branch, dest: DestState, status: int, msg: Message, now: float
    ) -> None:
        sent = self.prober.pending.pop(branch.key, None) if status >= 200 else None
        if sent is not None:
            self._probe_result(dest, status, msg.reason or "", (now - sent[1]) * 1000.0, now)

    def _probe_lost(self, branch: Branch, dest: DestState, code: int, now: float) -> None:
        """A probe timed out (408) or could not be sent (503 from the transport)."""
        if self.prober.pending.pop(branch.key, None) is not None:
            if code == 408:
                self._probe_result(dest, 408, "Request Timeout", None, now)
            else:
                self._probe_result(dest, 500, "Sending keepalive failed", None, now)

    def _probe_result(
        self, dest: DestState, code: int, reason: str, rtt_ms: float | None, now: float
    ) -> None:
        alive = rtt_ms is not None and code in self.prober.config.alive
        self.gateways.probe_result(dest, code, reason, alive, rtt_ms, now + self.wall_offset)
        self.stats["probes"] += 1

    # ---- responses ----------------------------------------------------------------------------
    def _response(self, msg: Message, inbound: Inbound, now: float, out: list[Send]) -> None:
        why = check_response(msg)
        if why is not None:
            log.info("drop response from %s: %s", inbound.source, why)
            return
        branch = self._branches.get(self._client_key(msg))
        status = msg.status or 0
        if branch is None:
            if 200 <= status < 300 and msg.cseq.method == "INVITE":
                self._stateless_response(msg, out)
            return
        ack = None
        sent = branch.sent
        if sent is not None and branch.ctx is not None and branch.ctx.invite and status >= 300:
            ack = ack_for(sent, msg)
        self._run_branch(branch, branch.txn.on_response(status, now, ack), msg, inbound, now, out)
        if status >= 200:
            branch.sent = None  # a retransmitted final gets the ACK the transaction kept

    def _relay(
        self,
        ctx: ServerCtx,
        msg: Message,
        status: int,
        src: Inbound | None,
        now: float,
        out: list[Send],
    ) -> None:
        fwd = msg.copy()
        fwd.replace_first_value("via", None)
        code = upstream_code(status)
        if code != status:
            fwd.set_first_line(f"SIP/2.0 {code} {msg.reason}".encode())
        dialog = msg.cseq.method in DIALOG_CREATING and msg.get("contact") is not None
        if src is not None and status < 300 and dialog:
            add_contact_alias(fwd, src.source, src.socket.proto)
        data = fwd.to_bytes()
        self._stat_reply(code)
        if status >= 200 and ctx.final_sent:
            out.append(send_to(data, ctx.reply_to, ctx.inbound.socket, ctx.inbound.conn_id))
            return
        self._upstream(ctx, code, data, status >= 200, now, out)

    def _stateless_response(self, msg: Message, out: list[Send]) -> None:
        vias = msg.vias
        if len(vias) < 2 or not (vias[0].branch or "").startswith(self._prefix):
            return
        nxt = vias[1]
        host = nxt.received or nxt.host_bare
        if host == "255.255.255.255" or (not host[:1].isdigit() and ":" not in host):
            return
        proto = Proto.TCP if nxt.transport == "TCP" else Proto.UDP
        sock = self._pick_socket(None, proto, None)
        if sock is None:
            return
        fwd = msg.copy()
        fwd.replace_first_value("via", None)
        out.append(send_to(fwd.to_bytes(), address(host, nxt.rport or nxt.port or 5060), sock))

    # ---- local replies --------------------------------------------------------------------------
    def _response_bytes(
        self,
        msg: Message,
        inbound: Inbound,
        code: int,
        reason: str | None,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        top: str | None = None
        try:  # not contextlib.suppress: Python code per reply
            top = fix_top_via(msg.top_via, inbound.source)
        except ParseError:
            top = None
        return response(
            msg, code, reason, top_via=top, extra=extra, server=self.config.server_header
        )

    def _reply(
        self,
        msg: Message,
        inbound: Inbound,
        code: int,
        reason: str,
        out: list[Send],
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """A stateless reply (sanity, routing refusals, OPTIONS to us)."""
        try:
            dest = reply_address(msg.top_via, inbound.source, txn_reliable(inbound))
        except ParseError:
            dest = inbound.source
        self._stat_reply(code)
        data = self._response_bytes(msg, inbound, code, reason, extra)
        out.append(send_to(data, dest, inbound.socket, inbound.conn_id))

    def _local_reply(
        self,
        ctx: ServerCtx,
        code: int,
        reason: str | None,
        now: float,
        out: list[Send],
        final: bool = True,
    ) -> None:
        request = ctx.request
        if request is None:  # released: the final response went upstream already
            return
        if final:
            self._stat_reply(code)
        data = self._response_bytes(request, ctx.inbound, code, reason)
        self._upstream(ctx, code, data, final, now, out)

    def _upstream(
        self, ctx: ServerCtx, code: int, data: bytes, final: bool, now: float, out: list[Send]
    ) -> None:
        """Send a response of ours or a relayed one to the caller through the server
        transaction; a final one closes the call's accounting and releases the context."""
        if final:
            ctx.final_sent = True
            self._call_final(ctx, code, now)
        self._server_effects(ctx, ctx.txn.send_response(code, data, now), out)
        if final:
            ctx.release()

    def _parse_failed(self, exc: ParseError, inbound: Inbound, out: list[Send]) -> None:
        msg = exc.partial
        log.info("malformed message from %s: %s", inbound.source, exc.reason)
        if msg is None or msg.method in (None, "ACK") or msg.get("via") is None:
            return
        self._reply(msg, inbound, exc.status, f"Bad Request ({exc.reason})"[:100], out)

    def _server_effects(
        self, holder: ServerCtx | LocalServer, effects: list[Effect], out: list[Send]
    ) -> None:
        for effect in effects:
            if isinstance(effect, Transmit):
                out.append(
                    send_to(
                        effect.data, holder.reply_to, holder.inbound.socket, holder.inbound.conn_id
                    )
                )
            elif isinstance(effect, Terminated):
                if self._servers.get(holder.key) is holder:
                    del self._servers[holder.key]
                    self.stats["freed"] += 1
                if isinstance(holder, ServerCtx):
                    holder.branch = None  # freed by reference counting, not by the GC
            elif isinstance(effect, TimedOut):
                log.info("no ACK for the final response sent to %s (timer H)", holder.reply_to)
        if holder.key in self._servers:
            self._arm(holder)

    # ---- timers -------------------------------------------------------------------------------
    def _arm(self, holder: Holder) -> None:
        when = holder.deadline()
        if when is not None:
            self._timers.arm(holder, when)

    def _fire(self, holder: Holder, now: float, out: list[Send]) -> None:
        if isinstance(holder, ProbeSchedule):
            self._probe_round(now, out)
            return
        if isinstance(holder, CallTable):
            if holder.expire(now):
                log.info("call limits: answered calls without BYE expired")
            return
        if isinstance(holder, Branch):
            if self._branches.get(holder.key) is holder:
                self._run_branch(holder, holder.txn.on_timer(now), None, None, now, out)
            return
        txn_due = holder.txn.next_deadline()
        if txn_due is not None and txn_due <= now:
            self._server_effects(holder, holder.txn.on_timer(now), out)
        if (
            isinstance(holder, ServerCtx)
            and holder.fr_deadline is not None
            and holder.fr_deadline <= now
        ):
            self._fr_expired(holder, now, out)

    # ---- helpers ------------------------------------------------------------------------------
    def _server_key(self, msg: Message) -> Key:
        via = msg.top_via
        method = "INVITE" if msg.method == "ACK" else msg.method or ""
        if via.rfc3261:
            return (via.branch or "", via.sent_by, method)
        return ("2543", msg.call_id, msg.from_tag or "", str(msg.cseq.number), via.text, method)

    @staticmethod
    def _client_key(msg: Message) -> Key:
        method = msg.cseq.method
        return (msg.top_via.branch or "", "INVITE" if method == "ACK" else method)

    def _my_addresses(self, local_hosts: tuple[str, ...]) -> dict[tuple[str, int], SocketInfo]:
        me: dict[tuple[str, int], SocketInfo] = {}
        for sock in self.sockets:
            hosts = {sock.public_host.lower(), sock.host.lower()}
            if sock.host in ("0.0.0.0", "::"):
                hosts |= {h.lower() for h in local_hosts}
            for host in hosts:
                me.setdefault((host, sock.public_port), sock)
                me.setdefault((host, sock.port), sock)
        return me

    def _is_me(self, uri: Uri) -> SocketInfo | None:
        sock = self._me.get((uri.host_bare, uri.effective_port()))
        if sock is None or not uri.is_sip:
            return None
        want = Proto.TCP if uri.transport == "tcp" else Proto.UDP
        if sock.proto is want:
            return sock
        return self._pick_socket(sock.name, want, sock) or sock

    def _pick_socket(
        self, name: str | None, proto: Proto, inbound: SocketInfo | None
    ) -> SocketInfo | None:
        name = name or self.config.default_socket
        if name is not None:
            for sock in self.sockets:
                if sock.name == name and sock.proto is proto:
                    return sock
            log.warning("no %s socket named %r; using the default", proto.value, name)
        if inbound is not None and inbound.proto is proto:
            return inbound
        for sock in self.sockets:
            if sock.proto is proto:
                return sock
        return None

    @staticmethod
    def _hop_target(hop: NextHop) -> Target:
        return Target(
            uri=f"sip:{hop.dest}", host=hop.dest.host, port=hop.dest.port, proto=hop.proto,
            socket_name=None, setid=0, attrs="",
        )  # fmt: skip

    def _stat_reply(self, code: int) -> None:
        self.stats[_CLASSES[code // 100]] += 1


ALLOW: Final = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK, REFER, NOTIFY, SUBSCRIBE, MESSAGE"
)


def txn_reliable(inbound: Inbound) -> bool:
    return inbound.socket.proto.reliable
