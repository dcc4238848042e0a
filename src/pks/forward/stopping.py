"""Stopping, and the calls of a dead worker: what the relay does when the proxy ends.

Beside `pks.forward.relay.Relay` (its contexts and branches), used by the spine's
``drain``/``shutdown`` (a graceful stop, docs/operations.md) and by a worker that replaces a
dead one (:mod:`pks.workers.journal`). Sans-IO like the relay.
"""

from __future__ import annotations

import logging
from typing import Final

from pks.forward.context import Branch, ServerCtx
from pks.forward.nat import reply_address
from pks.forward.relay import Relay
from pks.net import Address, Inbound, Proto, Send, SocketInfo
from pks.sip import Message
from pks.transaction import ClientInviteTransaction, ServerInviteTransaction

__all__ = ["adopt_lost", "in_flight", "settling", "shutdown"]

log: Final = logging.getLogger("pks.proxy")
_WAITING: Final = frozenset({"Calling", "Trying", "Proceeding"})  # client states before a final
Key = tuple[str, ...]


def in_flight(relay: Relay) -> int:
    """Requests relayed and not answered yet: their callers wait for a final response."""
    return sum(1 for h in relay.servers.values() if isinstance(h, ServerCtx) and not h.final_sent)


def settling(relay: Relay) -> int:
    """Branches still waiting for their final response (a CANCEL's 200, an INVITE's 487
    to ACK) — what a stopping proxy lingers for, briefly."""
    return sum(1 for b in relay.branches.values() if b.txn.state.value in _WAITING)


def shutdown(
    relay: Relay,
    code: int,
    reason: str,
    extra: tuple[tuple[str, str], ...],
    now: float,
    out: list[Send],
) -> int:
    """The proxy stops: every request still unanswered gets ``code`` now, and the live
    branch of each INVITE is cancelled (at once when it rang, else as soon as its first
    provisional arrives, RFC 3261 §9.1). Returns how many callers were answered."""
    answered = 0
    for holder in list(relay.servers.values()):
        if not isinstance(holder, ServerCtx) or holder.final_sent:
            continue
        answered += 1
        holder.cancelled = True
        branch = holder.branch
        if holder.invite and branch is not None and not branch.closed:
            if branch.provisional:
                relay.send_cancel(branch, now, out)
            else:
                branch.cancel_pending = True
        log.info("%s: stopping, answered %d", holder.label, code)
        relay.local_reply(holder, code, reason, now, out, extra=extra)
    return answered


def adopt_lost(
    relay: Relay,
    key: Key,
    request: Message,
    inbound: Inbound,
    sent: Message | None,
    dest: Address,
    proto: Proto,
    sock: SocketInfo | None,
    now: float,
    out: list[Send],
) -> None:
    """An INVITE relayed by a worker that died before it was answered (its journal,
    :mod:`pks.workers.journal`): answer the caller 500 through a server transaction of
    ours — a retransmission of the INVITE gets the 500 again, never a second call; the ACK
    is absorbed — and CANCEL the branch the dead worker had opened (``sent``, towards
    ``dest``), whose 487 is then ACKed here."""
    reliable = inbound.socket.proto.reliable
    txn = ServerInviteTransaction(reliable=reliable, timers=relay.config.timers)
    reply_to = reply_address(request.top_via, inbound.source, reliable)
    ctx = ServerCtx(key, request, request, inbound, reply_to, txn)
    ctx.cancelled = True
    relay.servers[key] = ctx
    if sent is not None and sock is not None and sent.top_via.branch:
        timers = relay.config.timers
        client = ClientInviteTransaction(b"", reliable=proto.reliable, timers=timers)
        client.start(now)  # nothing is sent again: it only waits for the final
        client.on_response(100, now)
        bkey = (sent.top_via.branch, "INVITE")
        branch = Branch(bkey, ctx, client, sent, dest, proto, sock)
        branch.provisional = True
        if bkey not in relay.branches:
            relay.branches[bkey] = branch
            ctx.branch = branch
            relay.send_cancel(branch, now, out)
    relay.local_reply(ctx, 500, "Server Internal Error", now, out)
