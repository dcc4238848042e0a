"""Per-request proxy state (RFC 3261 §16.5 "response context") and per-branch state.

Part of step ⑥. A ``ServerCtx`` exists for every request we relay statefully: the server
transaction towards the caller, the target list from routing (the chosen gateway first, then
the failover order), the finals collected so far and the proxy timers (fr_timer until a
provisional arrives on the current branch, fr_inv_timer after). A ``Branch`` is one attempt
towards one target: its client transaction and the bytes it sent. We fork serially only, so a
context has at most one live branch (plus branches that are winding down after a CANCEL or a
timeout).
"""

from __future__ import annotations

from typing import ClassVar

from pks.forward.calls import Call
from pks.net import Address, Inbound, Proto, SocketInfo
from pks.route.decision import Target
from pks.sip import Message
from pks.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
)
from pks.transaction.wheel import BRANCH, SERVER

ServerTxn = ServerInviteTransaction | ServerNonInviteTransaction
ClientTxn = ClientInviteTransaction | ClientNonInviteTransaction


class ServerCtx:
    """A request being relayed: caller side + routing result + collected finals.

    Once the final response went upstream, `release` drops what only new branches and local
    replies need (the parsed request, its forwarding copy, the finals): the context then waits
    out its server transaction's Timer J/L (32 s over UDP) holding a few small objects.
    """

    __slots__ = (
        "base",
        "branch",
        "call",
        "cancelled",
        "connect",
        "final_sent",
        "finals",
        "forced_socket",
        "fr_deadline",
        "held",
        "inbound",
        "key",
        "method",
        "next_target",
        "reply_to",
        "request",
        "rr_token",
        "setid",
        "targets",
        "txn",
        "user",
    )
    timer_kind: ClassVar[int] = SERVER

    def __init__(
        self,
        key: tuple[str, ...],
        request: Message,
        base: Message,
        inbound: Inbound,
        reply_to: Address,
        txn: ServerTxn,
        targets: tuple[Target, ...] = (),
    ) -> None:
        self.key = key
        self.request: Message | None = request  # as received; None once released
        self.base: Message | None = base  # prepared for forwarding (shared by every branch)
        self.method = request.method or ""  # kept: the request itself is released
        self.inbound = inbound
        self.reply_to = reply_to
        self.txn = txn
        self.targets = targets
        self.next_target = 0
        self.branch: Branch | None = None
        self.finals: list[tuple[int, Message | None]] = []
        self.final_sent = False
        self.held = False  # counted in Relay.waiting until its final response (or its end)
        self.cancelled = False
        self.fr_deadline: float | None = None
        self.rr_token: str | None = None  # Record-Routed with this dialog token (initial)
        self.forced_socket: SocketInfo | None = None  # in-dialog: second half of a double RR
        self.connect = True  # False: in-dialog toward a NAT alias (see pks.net.Send)
        self.call: Call | None = None  # initial INVITE: counted against call limits
        self.user: str | None = None  # initial request: the R-URI user routed on
        self.setid: int | None = None  # initial request: the dispatcher set chosen

    @property
    def label(self) -> str:
        """For logs (made only when a line is logged): "INVITE 33123 from 10.0.0.1:5060
        (set 2)", or "in-dialog BYE from 10.0.0.1:5060"."""
        source = self.inbound.source
        if self.setid is None:
            return f"in-dialog {self.method} from {source}"
        return f"{self.method} {self.user} from {source} (set {self.setid})"

    @property
    def invite(self) -> bool:
        return self.method == "INVITE"

    def release(self) -> None:
        """The final response is sent: forget the messages (see the class docstring)."""
        self.request = self.base = None
        self.finals.clear()

    def deadline(self) -> float | None:
        d = self.txn.next_deadline()
        if self.fr_deadline is not None and not self.final_sent:
            d = self.fr_deadline if d is None else min(d, self.fr_deadline)
        return d


class Branch:
    """One client transaction towards one destination.

    ``sent`` (what we sent, for a CANCEL or the ACK of a failure) is dropped once a final
    response arrived: the transaction keeps its ACK bytes for retransmitted finals."""

    __slots__ = (
        "cancel_pending",
        "closed",
        "connect",
        "ctx",
        "dest",
        "dropped",
        "key",
        "proto",
        "provisional",
        "sent",
        "socket",
        "target",
        "txn",
    )
    timer_kind: ClassVar[int] = BRANCH

    def __init__(
        self,
        key: tuple[str, ...],
        ctx: ServerCtx | None,  # None for a CANCEL we sent, or a keepalive
        txn: ClientTxn,
        sent: Message | None,
        dest: Address,
        proto: Proto,
        socket: SocketInfo,
        target: Target | None = None,
    ) -> None:
        self.key = key
        self.ctx = ctx
        self.txn = txn
        self.sent = sent
        self.dest = dest
        self.proto = proto
        self.socket = socket
        self.target = target
        self.provisional = False
        self.cancel_pending = False
        self.closed = False  # no longer the context's live branch (timed out, replaced)
        self.connect = True  # may the transport open a connection to ``dest``? (pks.net.Send)
        self.dropped = False  # its owner gave up on it: no timer fires for it any more

    def deadline(self) -> float | None:
        return None if self.dropped else self.txn.next_deadline()


class LocalServer:
    """A server transaction we answer ourselves (the 200 to a CANCEL)."""

    __slots__ = ("inbound", "key", "reply_to", "txn")
    timer_kind: ClassVar[int] = SERVER

    def __init__(
        self, key: tuple[str, ...], txn: ServerTxn, inbound: Inbound, reply_to: Address
    ) -> None:
        self.key = key
        self.txn = txn
        self.inbound = inbound
        self.reply_to = reply_to

    def deadline(self) -> float | None:
        return self.txn.next_deadline()
