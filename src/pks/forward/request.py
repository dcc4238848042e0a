"""Writing the forwarded request (RFC 3261 §16.6): Max-Forwards, Record-Route, our Via.

Part of step ⑥. ``prepare`` does once per incoming request what every branch shares (top Via
fixed for NAT, Max-Forwards decremented, preloaded Route removed on initial requests, Contact
alias); ``for_branch`` adds what depends on the outgoing socket: Record-Route (double when the
request leaves by another socket or transport, Kamailio rr's ``r2=on`` pair, outgoing first)
and our Via with a fresh RFC 3261 branch.
"""

from __future__ import annotations

from typing import Final

from pks.net import Proto, SocketInfo
from pks.sip import Message, format_host
from pks.sip.message import Header

#: Methods that create a dialog and therefore get Record-Route.
DIALOG_CREATING: Final = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


def decrement_max_forwards(msg: Message, limit: int) -> None:
    """Max-Forwards - 1, clamped to ``limit``; added with ``limit`` when absent (§16.6 step 3)."""
    mf = msg.max_forwards
    msg.set("max-forwards", str(limit if mf is None else min(mf, limit) - 1))


def rr_uri(sock: SocketInfo, double: bool) -> str:
    transport = ";transport=tcp" if sock.proto is Proto.TCP else ""
    r2 = ";r2=on" if double else ""
    return f"<sip:{format_host(sock.public_host)}:{sock.public_port}{transport}{r2};lr>"


def via_value(sock: SocketInfo, branch: str) -> str:
    return _written(sock).via + branch


class _Written:
    """What every request leaving by one socket carries: its Record-Route lines, the start
    of its Via. Made at the socket's first use, not per branch."""

    __slots__ = ("rr_double", "rr_single", "sock", "via")

    def __init__(self, sock: SocketInfo) -> None:
        self.sock = sock
        self.rr_single = Header.make("record-route", rr_uri(sock, False))
        self.rr_double = Header.make("record-route", rr_uri(sock, True))
        host = format_host(sock.public_host)
        self.via = f"SIP/2.0/{sock.proto.via_name} {host}:{sock.public_port};branch="


_written_by: Final[dict[int, _Written]] = {}  # id(SocketInfo) → its lines (the entry names it)


def _written(sock: SocketInfo) -> _Written:
    found = _written_by.get(id(sock))
    if found is None or found.sock is not sock:
        if len(_written_by) >= 1024:  # sockets come and go with reloads: no unbounded growth
            _written_by.clear()
        found = _written_by[id(sock)] = _Written(sock)
    return found


def for_branch(
    base: Message, inbound: SocketInfo, outbound: SocketInfo, branch: str, record_route: bool
) -> Message:
    """The request as it leaves by ``outbound`` on one branch."""
    msg = base.copy()
    out = _written(outbound)
    if record_route:
        if inbound.key != outbound.key or inbound.public_host != outbound.public_host:
            msg.prepend_header(_written(inbound).rr_double)
            msg.prepend_header(out.rr_double)
        else:
            msg.prepend_header(out.rr_single)
    msg.prepend("via", out.via + branch)
    return msg
