"""Step ⑥: the §16 response contexts — from a routed request to its final response.

A `ServerCtx` exists for every request we relay statefully (RFC 3261 §16.5): the server
transaction towards the caller, the target list (the chosen gateway first, then the failover
order), the finals collected so far and the proxy timers (fr_timer until a provisional arrives
on the current branch, fr_inv_timer after). A `Branch` is one attempt towards one target: its
client transaction and the bytes it sent. We fork serially (§16.6, one live branch), fail over
on the configured codes and on timeouts, cancel (§16.10), and choose the best final (§16.7).

`Relay` owns the transaction tables and fires their timers; `pks.proxy.Proxy` decides *what*
to relay (matching, routing, dialogs) and hands it here. Sans-IO: sends are returned as
``Send`` values in ``out``, time is ``now``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from typing import Final, Protocol

from pks.dns.cache import DnsCache
from pks.forward.calls import CallTable
from pks.forward.config import CoreConfig
from pks.forward.context import Branch, LocalServer, ServerCtx
from pks.forward.hop import cancel_for
from pks.forward.nat import add_contact_alias, reply_address
from pks.forward.pins import DialogPins
from pks.forward.request import DIALOG_CREATING, for_branch
from pks.forward.response import best, reply_bytes, upstream_code
from pks.forward.sockets import Sockets
from pks.health.state import GatewayStates
from pks.net import Address, Inbound, Proto, Send, SocketInfo, send_to
from pks.route.decision import Target
from pks.sip import Message
from pks.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Effect,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Terminated,
    TimedOut,
    Transmit,
    TransportFailed,
)
from pks.transaction.wheel import TimerHub

__all__ = ["InFlightLog", "LocalClient", "Relay"]

log: Final = logging.getLogger("pks.proxy")
_CLASSES: Final = tuple(f"{n}xx" for n in range(7))  # stats keys of status codes 100..699
Key = tuple[str, ...]


class LocalClient(Protocol):
    """The owner of a request we send ourselves (a keepalive): told how it ended."""

    def answered(self, key: Key, status: int, msg: Message, now: float) -> None: ...
    def lost(self, key: Key, code: int, now: float) -> None: ...


class InFlightLog(Protocol):
    """Where a worker process notes the INVITEs it relays until they are answered
    (:mod:`pks.workers.journal`), so that the worker replacing it after a crash can answer
    their callers and cancel their branches; None in one process."""

    def opened(self, key: Key, request: Message, inbound: Inbound) -> None: ...
    def branched(
        self, key: Key, sent: bytes, dest: Address, proto: Proto, sock: SocketInfo
    ) -> None: ...
    def answered(self, key: Key) -> None: ...


class Relay:
    """The transaction tables and what moves them: contexts, branches, failover, CANCEL."""

    def __init__(
        self,
        config: CoreConfig,
        sockets: Sockets,
        hub: TimerHub,
        calls: CallTable,
        gateways: GatewayStates,
        dns: DnsCache,
        pins: DialogPins,
        stats: Counter[str],
        prefix: str,
    ) -> None:
        self.config = config
        self.sockets = sockets
        self.hub = hub
        self.calls = calls
        self.gateways = gateways
        self.dns = dns
        self.pins = pins
        self.stats = stats
        self.prefix = prefix  # our Via branches start with it (a worker's has its index)
        self.servers: dict[Key, ServerCtx | LocalServer] = {}
        self.branches: dict[Key, Branch] = {}
        self.locals: dict[Key, LocalClient] = {}  # branch key → owner of a request of ours
        self._seq = 0
        self._random = ""  # unpredictable hex digits, 16 taken per branch (``next_id``)
        self.journal: InFlightLog | None = None  # worker processes (pks.workers.journal)
        # requests relayed and not answered yet: what PKS_MAX_TRANSACTIONS bounds. Those
        # answered linger for their retransmission timers (up to 32 s on UDP) with their
        # request released, so they are bounded by the rate calls end at, not counted here
        self.waiting = 0

    @property
    def transactions(self) -> int:
        return len(self.servers) + len(self.branches)

    def _settle(self, ctx: ServerCtx) -> None:
        if ctx.held:
            ctx.held = False
            self.waiting -= 1

    def next_id(self) -> str:
        """A number not used before by this proxy, then 64 unpredictable bits: a branch no
        one can guess, so a response is ours only if it answers what we sent."""
        self._seq += 1
        pool = self._random
        if len(pool) < 16:
            pool = os.urandom(2048).hex()  # one system call per 256 branches
        self._random = pool[16:]
        return str(self._seq) + "." + pool[:16]

    # ---- opening ------------------------------------------------------------------------------
    def open(
        self,
        msg: Message,
        key: Key,
        inbound: Inbound,
        base: Message,
        targets: tuple[Target, ...],
    ) -> ServerCtx:
        """A response context for ``msg`` (``base`` is its forwarding copy)."""
        reliable = inbound.socket.proto.reliable
        txn: ServerInviteTransaction | ServerNonInviteTransaction
        if msg.method == "INVITE":
            txn = ServerInviteTransaction(reliable=reliable, timers=self.config.timers)
        else:
            txn = ServerNonInviteTransaction(reliable=reliable, timers=self.config.timers)
        reply_to = reply_address(msg.top_via, inbound.source, reliable)
        ctx = ServerCtx(key, msg, base, inbound, reply_to, txn, targets)
        self.servers[key] = ctx
        ctx.held = True
        self.waiting += 1
        self.stats["created"] += 1
        if self.journal is not None and msg.method == "INVITE":
            self.journal.opened(key, msg, inbound)
        return ctx

    def start(self, ctx: ServerCtx, now: float, out: list[Send]) -> None:
        # the INVITE goes out first, its 100 Trying second: the callee starts working one
        # send earlier (no 100 once a final went upstream: no target, no socket)
        self._next_branch(ctx, now, out)
        if ctx.invite and not ctx.final_sent:
            self.local_reply(ctx, 100, "Trying", now, out, final=False)

    def answer_cancel(
        self, msg: Message, key: Key, inbound: Inbound, ctx: ServerCtx, now: float, out: list[Send]
    ) -> None:
        """A CANCEL matching ``ctx``: 200 to it (its own server transaction), then cancel."""
        reliable = inbound.socket.proto.reliable
        txn = ServerNonInviteTransaction(reliable=reliable, timers=self.config.timers)
        local = LocalServer(key, txn, inbound, reply_address(msg.top_via, inbound.source, reliable))
        self.servers[key] = local
        data = reply_bytes(msg, inbound, 200, "OK", self.config.server_header)
        self.server_effects(local, txn.send_response(200, data, now), out)
        self._cancel_ctx(ctx, now, out)

    def send_local(
        self,
        key: Key,
        data: bytes,
        target: Target,
        sock: SocketInfo,
        owner: LocalClient,
        now: float,
        out: list[Send],
    ) -> Branch:
        """A request of ours (``key`` = its branch and method) in a client transaction; its
        end is told to ``owner``."""
        txn = ClientNonInviteTransaction(
            data, reliable=target.proto.reliable, timers=self.config.timers
        )
        branch = Branch(key, None, txn, None, target.dest, target.proto, sock, target)
        self.branches[key] = branch
        self.locals[key] = owner
        self.run_branch(branch, txn.start(now), None, None, now, out)
        return branch

    def forget(self, key: Key) -> None:
        """Stop caring about a request of ours (its owner gave up on it)."""
        branch = self.branches.pop(key, None)
        self.locals.pop(key, None)
        if branch is not None:
            branch.dropped = True

    # ---- branches -----------------------------------------------------------------------------
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
            sock = ctx.forced_socket or self.sockets.pick(
                target.socket_name, target.proto, ctx.inbound.socket
            )
            if sock is None:
                log.warning("%s: no %s socket for %s", ctx.label, target.proto.value, target.uri)
                ctx.finals.append((503, None))
                continue
            self._open_branch(ctx, target, sock, now, out)
            return
        self._finish(ctx, now, out)

    def _open_branch(
        self, ctx: ServerCtx, target: Target, sock: SocketInfo, now: float, out: list[Send]
    ) -> None:
        base = ctx.base
        if base is None:  # released: the final response went upstream
            return
        branch_id = self.prefix + self.next_id()
        sent = for_branch(base, ctx.inbound.socket, sock, branch_id, ctx.rr_token, target)
        data = sent.to_bytes()
        reliable = target.proto.reliable
        txn: ClientInviteTransaction | ClientNonInviteTransaction
        if ctx.invite:
            txn = ClientInviteTransaction(data, reliable=reliable, timers=self.config.timers)
        else:
            txn = ClientNonInviteTransaction(data, reliable=reliable, timers=self.config.timers)
        dest = target.dest
        branch = Branch((branch_id, ctx.method), ctx, txn, sent, dest, target.proto, sock, target)
        branch.connect = ctx.connect
        self.branches[branch.key] = branch
        ctx.branch = branch
        if ctx.call is not None:
            self.calls.use(ctx.call, target)
            if ctx.call.cdr is not None:
                ctx.call.cdr.attempt(target.uri, now)
        ctx.fr_deadline = now + self.config.fr_timer
        self.hub.arm(ctx)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s → %s via %s", ctx.label, dest, sock)
        if self.journal is not None and ctx.invite:
            self.journal.branched(ctx.key, data, dest, target.proto, sock)
        self.run_branch(branch, txn.start(now), None, None, now, out)

    def run_branch(
        self,
        branch: Branch,
        effects: list[Effect],
        msg: Message | None,
        src: Inbound | None,
        now: float,
        out: list[Send],
    ) -> None:
        """Carry out a client transaction's effects (``msg`` from ``src``: a response)."""
        for effect in effects:
            if isinstance(effect, Transmit):
                out.append(send_to(effect.data, branch.dest, branch.socket, None, branch.connect))
            elif isinstance(effect, Deliver):
                if msg is None or src is None:
                    continue
                owner = self.locals.get(branch.key) if branch.ctx is None else None
                if owner is not None:
                    owner.answered(branch.key, effect.status, msg, now)
                else:
                    self._branch_response(branch, effect.status, msg, src, now, out)
            elif isinstance(effect, TimedOut):
                self._branch_failed(branch, 408, "no final response (timer B/F)", now, out)
            elif isinstance(effect, TransportFailed):
                self._branch_failed(branch, 503, "transport failure", now, out)
            elif isinstance(effect, Terminated):
                self.branches.pop(branch.key, None)
                self.locals.pop(branch.key, None)
                branch.ctx = None  # no ctx ↔ branch cycle left for the cyclic GC
        if branch.key in self.branches:
            self.hub.arm(branch)

    def _branch_response(
        self, branch: Branch, status: int, msg: Message, src: Inbound, now: float, out: list[Send]
    ) -> None:
        ctx = branch.ctx
        if ctx is None:  # the answer to a CANCEL we sent
            return
        if status < 200:
            branch.provisional = True
            if branch.cancel_pending:
                self.send_cancel(branch, now, out)
            if branch.closed or ctx.final_sent:
                return
            if not ctx.cancelled:
                ctx.fr_deadline = now + self.config.fr_inv_timer
                self.hub.arm(ctx)
            if status > 100:
                self._relay(ctx, msg, status, src, now, out)
            return
        if status < 300:
            call = ctx.call
            if call is not None and call.to_tag is None:
                call.to_tag = msg.to_tag  # the dialog whose BYE ends the call
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
        ctx = branch.ctx
        if ctx is None:
            owner = self.locals.pop(branch.key, None)
            if owner is not None:
                owner.lost(branch.key, code, now)
            return
        if branch.closed:
            return
        branch.closed = True
        ctx.finals.append((code, None))
        log.info("%s: %s failed: %s", ctx.label, branch.dest, why)
        target = branch.target
        if target is not None and target.setid and self.config.probe.interval:
            self.gateways.call_failed(target, why)
        if ctx.final_sent:
            return
        if not ctx.cancelled and ctx.branch is branch:
            self._next_branch(ctx, now, out)
        else:
            self._finish(ctx, now, out)

    # ---- timers, CANCEL, finals ---------------------------------------------------------------
    def branch_timer(self, branch: Branch, now: float, out: list[Send]) -> None:
        """A client transaction's timer is due (kind ``BRANCH``)."""
        if self.branches.get(branch.key) is branch:
            self.run_branch(branch, branch.txn.on_timer(now), None, None, now, out)

    def server_timer(self, holder: ServerCtx | LocalServer, now: float, out: list[Send]) -> None:
        """A server transaction's or a context's timer is due (kind ``SERVER``)."""
        txn_due = holder.txn.next_deadline()
        if txn_due is not None and txn_due <= now:
            self.server_effects(holder, holder.txn.on_timer(now), out)
        if (
            isinstance(holder, ServerCtx)
            and holder.fr_deadline is not None
            and holder.fr_deadline <= now
        ):
            self._fr_expired(holder, now, out)

    def _fr_expired(self, ctx: ServerCtx, now: float, out: list[Send]) -> None:
        ctx.fr_deadline = None
        branch = ctx.branch
        if ctx.final_sent or branch is None:
            return
        if ctx.cancelled:
            self.local_reply(ctx, 487, "Request Terminated", now, out)
        elif not branch.provisional:
            branch.cancel_pending = True
            self._branch_failed(branch, 408, f"no answer within {self.config.fr_timer}s", now, out)
        else:
            ringing = self.config.fr_inv_timer
            log.info("%s: no answer after ringing %ss, cancelling", ctx.label, ringing)
            ctx.cancelled = True
            self.send_cancel(branch, now, out)
            self.local_reply(ctx, 408, "Request Timeout", now, out)

    def _cancel_ctx(self, ctx: ServerCtx, now: float, out: list[Send]) -> None:
        if ctx.final_sent or ctx.cancelled:
            return
        ctx.cancelled = True
        branch = ctx.branch
        if branch is not None and not branch.closed and branch.provisional:
            self.send_cancel(branch, now, out)
            ctx.fr_deadline = now + 64 * self.config.timers.t1
            self.hub.arm(ctx)
            return
        if branch is not None:
            branch.cancel_pending = True
        self.local_reply(ctx, 487, "Request Terminated", now, out)

    def send_cancel(self, branch: Branch, now: float, out: list[Send]) -> None:
        """CANCEL what ``branch`` sent (§16.10), in a client transaction of its own."""
        branch.cancel_pending = False
        if branch.sent is None:  # a final response arrived: nothing left to cancel
            return
        data = cancel_for(branch.sent)
        txn = ClientNonInviteTransaction(
            data, reliable=branch.proto.reliable, timers=self.config.timers
        )
        key = (branch.key[0], "CANCEL")
        cancel = Branch(key, None, txn, None, branch.dest, branch.proto, branch.socket)
        cancel.connect = branch.connect
        if cancel.key in self.branches:
            return
        self.branches[cancel.key] = cancel
        self.run_branch(cancel, txn.start(now), None, None, now, out)

    def _finish(self, ctx: ServerCtx, now: float, out: list[Send]) -> None:
        if ctx.final_sent:
            return
        if not ctx.finals:
            self.local_reply(ctx, 404, "Not Found", now, out)
            return
        status, msg = ctx.finals[best([code for code, _ in ctx.finals])]
        log.info("%s: final %d", ctx.label, status)
        if msg is None:
            self.local_reply(ctx, status, None, now, out)
        else:
            self._relay(ctx, msg, status, None, now, out)

    def _call_final(self, ctx: ServerCtx, code: int, data: bytes, now: float) -> None:
        call = ctx.call
        if call is None:
            return
        if call.cdr is not None:
            call.cdr.final(code, data, ctx.finals, now, call.to_tag)
        if code < 300:
            self.calls.answered(call, now)
            self.hub.arm(self.calls)
        elif not call.answered:
            self.calls.fail(call, code)

    # ---- upstream -----------------------------------------------------------------------------
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
            if status >= 200 and ctx.invite:  # the dialog's requests need these connections
                conns = (ctx.inbound.conn_id, src.conn_id)
                self.pins.pin(msg.call_id, msg.from_tag, msg.to_tag, conns, now)
        data = fwd.to_bytes()
        self.stat_reply(code)
        if status >= 200 and ctx.final_sent:
            out.append(send_to(data, ctx.reply_to, ctx.inbound.socket, ctx.inbound.conn_id))
            return
        self._upstream(ctx, code, data, status >= 200, now, out)

    def local_reply(
        self,
        ctx: ServerCtx,
        code: int,
        reason: str | None,
        now: float,
        out: list[Send],
        final: bool = True,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        request = ctx.request
        if request is None:  # released: the final response went upstream already
            return
        if final:
            self.stat_reply(code)
        data = reply_bytes(request, ctx.inbound, code, reason, self.config.server_header, extra)
        self._upstream(ctx, code, data, final, now, out)

    def _upstream(
        self, ctx: ServerCtx, code: int, data: bytes, final: bool, now: float, out: list[Send]
    ) -> None:
        """Send a response of ours or a relayed one to the caller through the server
        transaction; a final one closes the call's accounting and releases the context."""
        if final:
            ctx.final_sent = True
            self._settle(ctx)
            self._call_final(ctx, code, data, now)
            if self.journal is not None and ctx.invite:
                self.journal.answered(ctx.key)
            request = ctx.request
            if ctx.method == "BYE" and code not in (401, 407) and request is not None:
                self.pins.unpin(request.call_id, request.from_tag, request.to_tag)
        self.server_effects(ctx, ctx.txn.send_response(code, data, now), out)
        if final:
            ctx.release()

    def server_effects(
        self, holder: ServerCtx | LocalServer, effects: list[Effect], out: list[Send]
    ) -> None:
        """Carry out a server transaction's effects."""
        for effect in effects:
            if isinstance(effect, Transmit):
                inbound = holder.inbound
                out.append(send_to(effect.data, holder.reply_to, inbound.socket, inbound.conn_id))
            elif isinstance(effect, Terminated):
                if self.servers.get(holder.key) is holder:
                    del self.servers[holder.key]
                    self.stats["freed"] += 1
                if isinstance(holder, ServerCtx):
                    self._settle(holder)
                    holder.branch = None  # freed by reference counting, not by the GC
            elif isinstance(effect, TimedOut):
                log.info("no ACK for the final response sent to %s (timer H)", holder.reply_to)
        if holder.key in self.servers:
            self.hub.arm(holder)

    def stat_reply(self, code: int) -> None:
        self.stats[_CLASSES[code // 100]] += 1
