"""Where an in-dialog request goes: loose routing over our Record-Route (RFC 3261 §16.4, §16.12).

Part of step ⑥, for requests with a To-tag and end-to-end ACKs. Mirrors Kamailio's
``loose_route()`` + ``handle_ruri_alias()``: our own Route entries are removed (both of a
``r2=on`` pair, the second one naming the socket to send from); the next Route, if any, is the
next hop (``maddr`` honoured); otherwise the Request-URI is, with its NAT ``alias`` taken out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Final

from pks.forward.nat import take_ruri_alias
from pks.net import Address, Proto, SocketInfo, address
from pks.sip import Message, Uri
from pks.sip.memo import Memo
from pks.sip.record import Record

#: Finds which of our sockets a URI names (host, port, proto), or None.
IsMe = Callable[[Uri], SocketInfo | None]


class NextHop(Record):
    __slots__ = ("dest", "proto", "socket")

    def __init__(self, dest: Address, proto: Proto, socket: SocketInfo | None) -> None:
        self.dest = dest
        self.proto = proto
        self.socket = socket  # forced by the second half of a double Record-Route

    def _fields(self) -> tuple[object, ...]:
        return (self.dest, self.proto, self.socket)


_ips: Final[Memo[bool]] = Memo(2048)


def _is_ip(host: str) -> bool:
    known = _ips.get(host)
    if known is not None:
        return known
    try:
        ipaddress.ip_address(host)
        found = True
    except ValueError:
        found = False
    return _ips.put(host, found)


def _hop_of(uri: Uri) -> tuple[Address, Proto] | None:
    host = uri.param("maddr") or uri.host_bare
    if host.startswith("["):
        host = host[1:-1]
    if not _is_ip(host):
        return None
    proto = Proto.TCP if uri.transport == "tcp" else Proto.UDP
    return address(host, uri.effective_port()), proto


def loose_route(msg: Message, is_me: IsMe) -> NextHop | str:
    """Edit ``msg`` (a copy) for its next hop and return it, or a reason it cannot be routed."""
    routes = msg.routes
    if not routes:
        return "in-dialog request without Route"
    forced: SocketInfo | None = None
    if is_me(routes[0].uri) is not None:
        msg.replace_first_value("route", None)
        if routes[0].uri.has_param("r2") and len(routes) > 1:
            forced = is_me(routes[1].uri)
            if forced is not None:
                msg.replace_first_value("route", None)
        routes = msg.routes
    if routes:
        hop = _hop_of(routes[0].uri)
        if hop is None:
            return f"next hop {routes[0].uri.host} is not an IP address"
        return NextHop(hop[0], hop[1], forced)
    alias = take_ruri_alias(msg.uri)
    if alias is not None:
        dest, proto, ruri = alias
        msg.set_ruri(ruri)
        return NextHop(dest, proto, forced)
    hop = _hop_of(msg.uri)
    if hop is None:
        return f"Request-URI host {msg.uri.host} is not an IP address"
    return NextHop(hop[0], hop[1], forced)
