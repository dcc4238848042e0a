"""Writing the forwarded request (RFC 3261 §16.6): Max-Forwards, Record-Route, our Via.

Part of step ⑥. ``prepare`` does once per incoming request what every branch shares (top Via
fixed for NAT, Max-Forwards decremented, preloaded Route removed on initial requests, Contact
alias); ``for_branch`` adds what depends on the outgoing socket: Record-Route (double when the
request leaves by another socket or transport, Kamailio rr's ``r2=on`` pair, outgoing first)
and our Via with a fresh RFC 3261 branch.
"""

from __future__ import annotations

from pks.net import Proto, SocketInfo
from pks.sip import Message, format_host

#: Methods that create a dialog and therefore get Record-Route.
DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


def decrement_max_forwards(msg: Message, limit: int) -> None:
    """Max-Forwards - 1, clamped to ``limit``; added with ``limit`` when absent (§16.6 step 3)."""
    mf = msg.max_forwards
    msg.set("max-forwards", str(limit if mf is None else min(mf, limit) - 1))


def rr_uri(sock: SocketInfo, double: bool) -> str:
    transport = ";transport=tcp" if sock.proto is Proto.TCP else ""
    r2 = ";r2=on" if double else ""
    return f"<sip:{format_host(sock.public_host)}:{sock.public_port}{transport}{r2};lr>"


def via_value(sock: SocketInfo, branch: str) -> str:
    host = format_host(sock.public_host)
    return f"SIP/2.0/{sock.proto.via_name} {host}:{sock.public_port};branch={branch}"


def for_branch(
    base: Message, inbound: SocketInfo, outbound: SocketInfo, branch: str, record_route: bool
) -> Message:
    """The request as it leaves by ``outbound`` on one branch."""
    msg = base.copy()
    if record_route:
        if inbound.key != outbound.key or inbound.public_host != outbound.public_host:
            msg.prepend("record-route", rr_uri(inbound, True))
            msg.prepend("record-route", rr_uri(outbound, True))
        else:
            msg.prepend("record-route", rr_uri(inbound, False))
    msg.prepend("via", via_value(outbound, branch))
    return msg
