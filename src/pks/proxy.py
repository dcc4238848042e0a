"""The sans-IO spine: steps ② to ⑥ for every message.

``Proxy.receive(data, inbound, now)`` lets only known peers in (the source gate), parses (②),
checks (③), matches or creates transactions (④), routes new requests (⑤, ``route()``) and
hands what is relayed to the §16 response contexts (⑥, `pks.forward.relay.Relay`); it
returns the ``Send`` effects for the transport. In-dialog requests are relayed only inside a
dialog set up through us (our signed Record-Route), responses only from where their request
went (docs/security.md). ``Proxy.on_timer(now)`` fires what is due — each kind of timer by
its owner (`pks.transaction.wheel.TimerHub`) — and ``next_deadline()`` says when to call it
again: the server arms one loop timer for that. Nothing here touches a socket, a clock or the
database; the routing snapshot is a reference the server swaps on reload.

RFC 3261 §16 (stateful proxy, serial forking over the dispatcher's failover order), §17 via
``pks.transaction``, RFC 3581 (rport), RFC 6026 (2xx handling).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any, Final

from pks.dns.cache import DnsCache
from pks.forward import stopping
from pks.forward.calls import CallTable
from pks.forward.config import CoreConfig
from pks.forward.context import ServerCtx
from pks.forward.dialog import DialogGate, NextHop
from pks.forward.hop import ack_for
from pks.forward.nat import reply_address
from pks.forward.pins import DialogPins
from pks.forward.relay import Relay
from pks.forward.request import (
    DIALOG_CREATING,
    prepare,
    via_value,
)
from pks.forward.response import reply_bytes, stray_2xx
from pks.forward.sockets import Sockets
from pks.guard import Quiet, SourceGate, reject_stranger
from pks.guard.shield import Shield
from pks.health.prober import Prober
from pks.health.state import GatewayStates
from pks.net import Inbound, Send, SocketInfo, send_to
from pks.route import Drop, Forward, Reply, route
from pks.route.decision import Target
from pks.route.fraud import Limits
from pks.route.snapshot import Snapshot
from pks.sanity import check_request, check_response
from pks.sip import Message, ParseError, parse
from pks.transaction import DeliverAck, ServerInviteTransaction
from pks.transaction.wheel import TimerHub

__all__ = ["ALLOW", "COUNTED_METHODS", "CoreConfig", "Proxy"]

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
# stats keys counted per message, made once: requests by method (others: "req.other"),
# responses received by class — bounded label sets for /metrics (pks.metrics)
COUNTED_METHODS: Final = (
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "UPDATE",
    "PRACK",
    "INFO",
    "REFER",
    "NOTIFY",
    "SUBSCRIBE",
    "MESSAGE",
    "REGISTER",
    "PUBLISH",
)
_REQUEST_KEYS: Final = {m: "req." + m for m in COUNTED_METHODS}
_RESPONSE_KEYS: Final = tuple(f"resp.{n}xx" for n in range(7))
_ALIASED: Final = DIALOG_CREATING | {"UPDATE"}  # requests whose Contact gets the NAT alias
Key = tuple[str, ...]
OnDue = Callable[[Any, float, list[Send]], None]  # fires one due holder of its kind


def _is_scanner(user_agent: bytes) -> bool:
    """A known scanner's User-Agent? Each value is searched once (peers repeat theirs)."""
    found = _user_agents.get(user_agent)
    if found is None:
        found = _SCANNER.search(user_agent) is not None
        if len(_user_agents) < 1024:
            _user_agents[user_agent] = found
    return found


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
        if config.probe.interval > 0:
            self.gateways.probing_mode = config.probe.mode
        self.calls = CallTable(self.gateways, config.call_max_duration)
        self.dns = DnsCache()  # named gateways' addresses, filled by the server's resolver
        self.socket_map = Sockets(sockets, local_hosts, config.default_socket)
        # TCP connections live dialogs need: the transport keeps them open (pks.forward.pins)
        self.pins = DialogPins(config.call_max_duration)
        # bans and per-source rate (pks.guard.shield), calls per second (pks.route.fraud)
        shield = Shield(
            config.rate_limit, config.rate_peer_limit, config.rate_window, config.ban_time
        )
        self.gate = SourceGate(self.dns, shield=shield)
        self.limits = Limits(config.intl_prefixes, config.local_prefixes, self.calls.intl_count)
        self.quiet = Quiet(log)
        self.hub = TimerHub()
        # our Via branches start with the prefix (worker processes put their index in it)
        prefix = branch_prefix or "z9hG4bKpks" + secrets.token_hex(3)
        self.relay = Relay(
            config,
            self.socket_map,
            self.hub,
            self.calls,
            self.gateways,
            self.dns,
            self.pins,
            self.stats,
            prefix,
        )
        self.prober = Prober(
            config.probe, self.gateways, self.dns, self.socket_map, self.relay, self.stats
        )
        # each kind of timer fired by its owner (pks.transaction.wheel: SERVER, BRANCH, ...)
        self._on_due: tuple[OnDue, ...] = (
            self.relay.server_timer,
            self.relay.branch_timer,
            self.prober.on_timer,
            CallTable.on_timer,
        )
        secret = config.secret or secrets.token_bytes(32)
        self.dialogs = DialogGate(secret, self.socket_map, self.gate.admits, config.max_forwards)
        self._snapshot: Snapshot | None = None
        self.snapshot = snapshot
        self.draining = False  # stopping: new out-of-dialog requests get 503 (``drain``)

    # ---- public API -----------------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot | None:
        """The live routing snapshot; assigning one adopts its destinations' states."""
        return self._snapshot

    @snapshot.setter
    def snapshot(self, snapshot: Snapshot | None) -> None:
        self._snapshot = snapshot
        self.gateways.sync(snapshot)
        self.gate.retarget(snapshot)

    @property
    def wall_offset(self) -> float:
        """Wall-clock time - ``now`` (the server sets it), for the gateways' displays."""
        return self.prober.wall_offset

    @wall_offset.setter
    def wall_offset(self, offset: float) -> None:
        self.prober.wall_offset = offset
        self.gate.shield.wall_offset = offset
        self.limits.wall_offset = offset

    @property
    def transactions(self) -> int:
        return self.relay.transactions

    def receive(self, data: bytes, inbound: Inbound, now: float) -> list[Send]:
        """One message from the transport → what to send."""
        out: list[Send] = []
        self.quiet.tick(now)
        shield = self.gate.shield
        if shield.active and shield.stops(inbound.source.host, data, now, self.gate.admits):
            return out  # a ban: nothing, not even for a known peer (the shield counts it)
        if not self.gate.admits(inbound.source.host):
            self.gate.drop(inbound.source.host, now)
            self.stats["dropped_unknown"] += 1
            if self.config.reject_unknown:
                refusal = reject_stranger(data, inbound, self.config.server_header)
                if refusal is not None:
                    self.relay.stat_reply(403)
                    out.append(refusal)
            return out
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
            self._refused("drop message from %s: %s", inbound.source, exc.reason)
        return out

    def admits(self, host: str) -> bool:
        """May a packet or connection from ``host`` (an IP literal) be looked at at all?

        Only known peers are: an ``address`` row's network or a gateway (dispatcher
        destination, including the addresses its name resolved to). Everything else is
        dropped before parsing (docs/security.md); so is a banned host."""
        shield = self.gate.shield
        if shield.active and shield.banned(host, shield.now):
            shield.banned_drops += 1
            return False
        return self.gate.admits(host)

    def start(self, now: float) -> list[Send]:
        """Begin the periodic work (the first probe round is due at once)."""
        self.prober.start(now)
        self.hub.arm(self.prober.schedule)
        return []

    # ---- stopping (docs/operations.md) -------------------------------------------------------
    def drain(self, now: float) -> list[Send]:
        """Stop taking new calls: from now on a new out-of-dialog request gets 503 with
        Retry-After (RFC 3261 §21.5.4: maintenance; a caller with another proxy fails over to
        it, RFC 3263 §4.3). Transactions in flight, their failover and CANCEL, and in-dialog
        requests go on as before."""
        self.draining = True
        return []

    @property
    def in_flight(self) -> int:
        """Requests relayed and still unanswered (what a drain waits for)."""
        return stopping.in_flight(self.relay)

    @property
    def settling(self) -> int:
        """Branches still waiting for a final response (CANCELs, cancelled INVITEs)."""
        return stopping.settling(self.relay)

    def shutdown(self, now: float) -> list[Send]:
        """The last step of a stop: every request still unanswered gets 503 Service
        Unavailable with Retry-After, and every ringing branch a CANCEL (see
        :meth:`pks.forward.relay.Relay.shutdown`). 503 rather than 487 (which says the caller
        itself cancelled, §21.4.25) or 408 (a timeout, §21.4.9): the server is going away for
        maintenance and the call may be placed again, through another instance."""
        self.draining = True
        out: list[Send] = []
        retry = (("Retry-After", str(self.config.retry_after)),)
        stopping.shutdown(self.relay, 503, "Service Unavailable", retry, now, out)
        return out

    def limit_counts(self) -> dict[str, object]:
        """Calls counted against limits: per source peer tag and per gateway."""
        snap = self._snapshot
        return self.calls.limit_counts(snap.peer_limits if snap is not None else {})

    def on_timer(self, now: float) -> list[Send]:
        """Fire every timer due at ``now``."""
        out: list[Send] = []
        hub = self.hub
        on_due = self._on_due
        for holder in hub.due(now):
            due = holder.deadline()
            if due is not None and due <= now:
                on_due[holder.timer_kind](holder, now, out)
            hub.arm(holder)
        return out

    def next_deadline(self) -> float | None:
        return self.hub.next_deadline()

    def send_failed(self, send: Send, reason: str, now: float) -> list[Send]:
        """The transport could not send ``send``: fail the branch it belongs to over."""
        out: list[Send] = []
        try:
            msg = parse(send.data)
            branch = self.relay.branches.get(self._client_key(msg))
        except ParseError:
            log.warning("cannot send to %s (%s): %s", send.dest, send.socket, reason)
            return out
        if send.connect:
            log.warning("cannot send to %s (%s): %s", send.dest, send.socket, reason)
        else:  # a NAT alias whose connection is gone: once, with the dialog it breaks
            what = msg.method or f"{msg.status} response"
            log.warning(
                "dialog Call-ID %s (tags %s, %s): %s to %s (%s) not sent: %s",
                msg.call_id,
                msg.from_tag,
                msg.to_tag,
                what,
                send.dest,
                send.socket,
                reason,
            )
        if msg.method is not None and branch is not None:
            self.relay.run_branch(branch, branch.txn.on_transport_error(now), None, None, now, out)
        return out

    # ---- requests ---------------------------------------------------------------------------
    def _request(self, msg: Message, inbound: Inbound, now: float, out: list[Send]) -> None:
        self.stats["requests"] += 1
        self.stats[_REQUEST_KEYS.get(msg.method or "", "req.other")] += 1
        rejected = check_request(msg)
        if rejected is not None:
            self.stats["dropped_invalid"] += 1
            self._refused("refuse %s from %s: %s", msg.method, inbound.source, rejected.reason)
            if msg.method != "ACK" and rejected.code:
                self._reply(msg, inbound, rejected.code, rejected.reason, out, rejected.extra)
            return
        ua = msg.get("user-agent")
        if ua is not None and _is_scanner(ua):
            self.stats["dropped_scanner"] += 1
            self._refused("drop %s from %s: scanner User-Agent %r", msg.method, inbound.source, ua)
            return
        key = self._server_key(msg)
        if msg.method == "ACK":
            self._ack(msg, key, inbound, now, out)
        elif msg.method == "CANCEL":
            self._cancel(msg, key, inbound, now, out)
        elif (holder := self.relay.servers.get(key)) is not None:
            self.relay.server_effects(holder, holder.txn.on_retransmission(now), out)
        elif msg.to_tag is not None:
            self._in_dialog(msg, key, inbound, now, out)
        elif self.draining:
            self._stopping(msg, inbound, now, out)
        else:
            self._initial(msg, key, inbound, now, out)

    def _initial(
        self, msg: Message, key: Key, inbound: Inbound, now: float, out: list[Send]
    ) -> None:
        src = inbound.source
        snap = self.snapshot
        if snap is None:
            self._reply(msg, inbound, 503, "Routing Not Loaded", out)
            self.calls.record_rejected(msg, inbound, 503, "Routing Not Loaded", now)
            return
        uri = msg.uri
        method = msg.method or ""
        if method == "OPTIONS" and uri.user is None and self.socket_map.is_me(uri) is not None:
            self._reply(msg, inbound, 200, "OK", out, (("Allow", ALLOW),))
            return
        if msg.max_forwards == 0:
            self._refused("refuse %s from %s: Max-Forwards 0", method, src)
            self._reply(msg, inbound, 483, "Too Many Hops", out)
            self.calls.record_rejected(msg, inbound, 483, "Too Many Hops", now)
            return
        if self.relay.waiting >= self.config.max_transactions:
            self._full(msg, inbound, out)
            self.calls.record_rejected(msg, inbound, 503, "Service Unavailable", now)
            return
        user = uri.user_decoded if uri.is_sip else None

        def hash_key(alg: str) -> str | None:
            if alg == "hash-callid":
                return msg.call_id
            if alg == "hash-from":
                return msg.from_.uri.user
            return user

        usable = None if self.gateways.all_usable else self.gateways.is_usable
        policy = self.config.policy
        decision = route(
            snap,
            src.host,
            src.port,
            user,
            usable,
            hash_key,
            method,
            policy,
            self.calls.peer_count,
            self.limits,
            now,
        )
        if isinstance(decision, Drop):
            self._refused("drop %s from %s: %s", method, src, decision.log)
        elif isinstance(decision, Reply):
            self._route_refused(msg, inbound, decision, out)
            self.calls.record_rejected(msg, inbound, decision.code, decision.reason, now)
        else:
            assert isinstance(decision, Forward)
            base = prepare(msg, inbound, True, self.config.max_forwards)
            ctx = self.relay.open(msg, key, inbound, base, decision.targets)
            if method in DIALOG_CREATING:
                ctx.rr_token = self.dialogs.token(msg.call_id, msg.from_tag or "")
            ctx.user, ctx.setid = user, decision.setid
            if method == "INVITE":
                ctx.call = self.calls.open(
                    msg.call_id, msg.from_tag or "", decision.peer.tag, src.host, decision.setid
                )
                self.calls.international(ctx.call, decision.intl)
                self.calls.record_opened(
                    ctx.call, msg, user, decision.peer.tag, decision.setid, src, now
                )
            self.relay.start(ctx, now, out)

    def _stopping(self, msg: Message, inbound: Inbound, now: float, out: list[Send]) -> None:
        """Draining: a new out-of-dialog request gets 503 with Retry-After (``drain``)."""
        self.stats["refused_draining"] += 1
        self._refused("refuse %s from %s: stopping", msg.method, inbound.source)
        retry = (("Retry-After", str(self.config.retry_after)),)
        self._reply(msg, inbound, 503, "Service Unavailable", out, retry)
        self.calls.record_rejected(msg, inbound, 503, "Service Unavailable", now)

    def _route_refused(
        self, msg: Message, inbound: Inbound, decision: Reply, out: list[Send]
    ) -> None:
        """``route()`` answered: count it, log it (within the budget), send the reply."""
        self.stats[decision.stat] += 1
        why, code = decision.log, decision.code
        self._refused("refuse %s from %s: %s → %d", msg.method, inbound.source, why, code)
        extra = () if decision.allow is None else (("Allow", decision.allow),)
        if decision.retry_after:
            extra = (("Retry-After", str(decision.retry_after)),)
        self._reply(msg, inbound, code, decision.reason, out, extra)

    def _full(self, msg: Message, inbound: Inbound, out: list[Send]) -> None:
        """Too many requests waiting for an answer: 503 with Retry-After (RFC 3261 §21.5.4)."""
        self.stats["refused_full"] += 1
        held = self.relay.waiting
        self._refused("refuse %s from %s: %d requests waiting", msg.method, inbound.source, held)
        retry = (("Retry-After", str(self.config.retry_after)),)
        self._reply(msg, inbound, 503, "Service Unavailable", out, retry)

    def _in_dialog(
        self, msg: Message, key: Key, inbound: Inbound, now: float, out: list[Send]
    ) -> None:
        if msg.max_forwards == 0:
            self._reply(msg, inbound, 483, "Too Many Hops", out)
            return
        if self.relay.waiting >= self.config.max_transactions * 5 // 4:
            self._full(msg, inbound, out)
            return
        hop, base = self.dialogs.hop(msg, inbound)
        if isinstance(hop, tuple):
            code, reason, why = hop
            src = inbound.source
            self._refused("refuse in-dialog %s from %s: %s → %d", msg.method, src, why, code)
            self._reply(msg, inbound, code, reason, out)
            return
        if msg.method == "BYE":
            self.calls.bye(msg.call_id, msg.from_tag, msg.to_tag, inbound.source.host, now)
        ctx = self.relay.open(msg, key, inbound, base, (self._hop_target(hop),))
        ctx.forced_socket = hop.socket
        ctx.connect = not hop.aliased  # a NAT alias: the peer's own connection or nothing
        self.relay.start(ctx, now, out)

    def _ack(self, msg: Message, key: Key, inbound: Inbound, now: float, out: list[Send]) -> None:
        holder = self.relay.servers.get(key)
        if isinstance(holder, ServerCtx) and isinstance(holder.txn, ServerInviteTransaction):
            effects = holder.txn.on_ack(now)
            self.relay.server_effects(holder, effects, out)
            if not any(isinstance(e, DeliverAck) for e in effects):
                return
        if msg.to_tag is None:
            return
        hop, fwd = self.dialogs.hop(msg, inbound)
        if isinstance(hop, tuple):
            self._refused("drop ACK from %s: %s", inbound.source, hop[2])
            return
        sock = hop.socket or self.socket_map.pick(None, hop.proto, inbound.socket)
        if sock is None:
            return
        seed = msg.top_via.branch or msg.call_id
        branch = f"{self.relay.prefix}a{hash(seed) & 0xFFFFFFFF}"
        fwd.prepend("via", via_value(sock, branch))
        out.append(send_to(fwd.to_bytes(), hop.dest, sock, None, not hop.aliased))

    def _cancel(
        self, msg: Message, key: Key, inbound: Inbound, now: float, out: list[Send]
    ) -> None:
        relay = self.relay
        if (holder := relay.servers.get(key)) is not None:
            relay.server_effects(holder, holder.txn.on_retransmission(now), out)
            return
        ctx = relay.servers.get((*key[:-1], "INVITE"))
        if not isinstance(ctx, ServerCtx):
            self._reply(msg, inbound, 481, "Call/Transaction Does Not Exist", out)
            return
        relay.answer_cancel(msg, key, inbound, ctx, now, out)

    # ---- forwarding ---------------------------------------------------------------------------
    # ---- responses ----------------------------------------------------------------------------
    def _response(self, msg: Message, inbound: Inbound, now: float, out: list[Send]) -> None:
        why = check_response(msg)
        if why is not None:
            log.info("drop response from %s: %s", inbound.source, why)
            return
        branch = self.relay.branches.get(self._client_key(msg))
        status = msg.status or 0
        self.stats[_RESPONSE_KEYS[status // 100]] += 1
        if branch is None:
            if 200 <= status < 300 and msg.cseq.method == "INVITE":
                relayed = stray_2xx(msg, self.relay.prefix, self.gate.admits, self.socket_map.pick)
                if relayed is not None:
                    out.append(relayed)
            return
        if inbound.source != branch.dest:  # only the peer we asked answers (docs/security.md)
            self.stats["response_wrong_source"] += 1
            src = inbound.source
            self._refused("drop %d from %s: its request went to %s", status, src, branch.dest)
            return
        ack = None
        sent = branch.sent
        if sent is not None and branch.ctx is not None and branch.ctx.invite and status >= 300:
            ack = ack_for(sent, msg)
        effects = branch.txn.on_response(status, now, ack)
        self.relay.run_branch(branch, effects, msg, inbound, now, out)
        if status >= 200:
            branch.sent = None  # a retransmitted final gets the ACK the transaction kept

    # ---- local replies --------------------------------------------------------------------------
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
            dest = reply_address(msg.top_via, inbound.source, inbound.socket.proto.reliable)
        except ParseError:
            dest = inbound.source
        self.relay.stat_reply(code)
        data = reply_bytes(msg, inbound, code, reason, self.config.server_header, extra)
        out.append(send_to(data, dest, inbound.socket, inbound.conn_id))

    def _parse_failed(self, exc: ParseError, inbound: Inbound, out: list[Send]) -> None:
        msg = exc.partial
        self.stats["dropped_malformed"] += 1
        self._refused("malformed message from %s: %s", inbound.source, exc.reason)
        if msg is None or msg.method in (None, "ACK") or msg.get("via") is None:
            return
        self._reply(msg, inbound, exc.status, f"Bad Request ({exc.reason})"[:100], out)

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

    @staticmethod
    def _hop_target(hop: NextHop) -> Target:
        return Target(
            uri=f"sip:{hop.dest}",
            host=hop.dest.host,
            port=hop.dest.port,
            proto=hop.proto,
            socket_name=None,
            setid=0,
            attrs="",
        )

    def _refused(self, fmt: str, *args: object) -> None:
        """One log line about a refused or dropped message, within the ``quiet`` budget."""
        if self.quiet.ok():
            log.info(fmt, *args)


ALLOW: Final = (
    "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK, REFER, NOTIFY, SUBSCRIBE, MESSAGE"
)
