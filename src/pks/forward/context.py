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

from dataclasses import dataclass, field

from pks.forward.calls import Call
from pks.health.state import DestState
from pks.net import Address, Inbound, Proto, SocketInfo
from pks.route.decision import Target
from pks.sip import Message
from pks.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
)

ServerTxn = ServerInviteTransaction | ServerNonInviteTransaction
ClientTxn = ClientInviteTransaction | ClientNonInviteTransaction


@dataclass(slots=True, eq=False)
class ServerCtx:
    """A request being relayed: caller side + routing result + collected finals."""

    key: tuple[str, ...]
    request: Message  # as received
    base: Message  # prepared for forwarding (shared by every branch)
    inbound: Inbound
    reply_to: Address
    txn: ServerTxn
    targets: tuple[Target, ...] = ()
    next_target: int = 0
    branch: Branch | None = None
    finals: list[tuple[int, Message | None]] = field(default_factory=list)
    final_sent: bool = False
    cancelled: bool = False
    fr_deadline: float | None = None
    record_route: bool = False
    forced_socket: SocketInfo | None = None  # in-dialog: second half of a double RR
    call: Call | None = None  # initial INVITE: counted against call limits
    label: str = ""  # for logs: "INVITE 33123 from 10.0.0.1:5060"

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    def deadline(self) -> float | None:
        d = self.txn.next_deadline()
        if self.fr_deadline is not None and not self.final_sent:
            d = self.fr_deadline if d is None else min(d, self.fr_deadline)
        return d


@dataclass(slots=True, eq=False)
class Branch:
    """One client transaction towards one destination."""

    key: tuple[str, ...]
    ctx: ServerCtx | None  # None for a CANCEL we sent
    txn: ClientTxn
    sent: Message
    dest: Address
    proto: Proto
    socket: SocketInfo
    target: Target | None = None
    provisional: bool = False
    cancel_pending: bool = False
    closed: bool = False  # no longer the context's live branch (timed out, replaced)
    probe: DestState | None = None  # a keepalive OPTIONS of ours (ctx is None)

    def deadline(self) -> float | None:
        return self.txn.next_deadline()


@dataclass(slots=True, eq=False)
class LocalServer:
    """A server transaction we answer ourselves (the 200 to a CANCEL)."""

    key: tuple[str, ...]
    txn: ServerTxn
    inbound: Inbound
    reply_to: Address

    def deadline(self) -> float | None:
        return self.txn.next_deadline()
