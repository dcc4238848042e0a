"""Where an in-dialog request goes: loose routing over our Record-Route (RFC 3261 §16.4, §16.12).

Part of step ⑥, for requests with a To-tag and end-to-end ACKs. Mirrors Kamailio's
``loose_route()`` + ``handle_ruri_alias()``: our own Route entries are removed (both of a
``r2=on`` pair, the second one naming the socket to send from); the next Route, if any, is the
next hop (``maddr`` honoured); otherwise the Request-URI is, with its NAT ``alias`` taken out.
`DialogGate` decides first whether the request may be relayed at all (docs/security.md).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable
from typing import Final

from pks.forward.nat import take_ruri_alias
from pks.forward.request import TOKEN_PARAM, dialog_token, prepare
from pks.forward.sockets import Sockets
from pks.net import Address, Inbound, Proto, SocketInfo, address
from pks.sip import Message, Uri
from pks.sip.memo import Memo
from pks.sip.record import Record

#: Finds which of our sockets a URI names (host, port, proto), or None.
IsMe = Callable[[Uri], SocketInfo | None]


class NextHop(Record):
    __slots__ = ("aliased", "dest", "proto", "socket")

    def __init__(
        self, dest: Address, proto: Proto, socket: SocketInfo | None, aliased: bool = False
    ) -> None:
        self.dest = dest
        self.proto = proto
        self.socket = socket  # forced by the second half of a double Record-Route
        # dest is the R-URI's NAT alias: a peer's source address, reached over its own
        # connection only (nothing listens there to connect to)
        self.aliased = aliased

    def _fields(self) -> tuple[object, ...]:
        return (self.dest, self.proto, self.socket, self.aliased)


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
    if alias is not None and _is_ip(alias[0].host):  # a name in an alias is never resolved
        dest, proto, ruri = alias
        msg.set_ruri(ruri)
        return NextHop(dest, proto, forced, True)
    hop = _hop_of(msg.uri)
    if hop is None:
        return f"Request-URI host {msg.uri.host} is not an IP address"
    return NextHop(hop[0], hop[1], forced)


Refusal = tuple[int, str, str]  # (code, reason, why for the log)

TOKENS_KEPT: Final = 4096


class DialogGate:
    """Dialogs only through us (docs/security.md): an in-dialog request, or the ACK of a
    2xx, is relayed only when its first Route is ours and carries our token for its dialog
    (`pks.forward.request.dialog_token` over the Call-ID and the caller's tag, keyed with
    ``secret``), toward a known peer (``admits``), never back to ourselves."""

    __slots__ = ("_old", "_tokens", "admits", "max_forwards", "me", "secret", "sockets")

    def __init__(
        self,
        secret: bytes,
        sockets: Sockets,
        admits: Callable[[str], bool],
        max_forwards: int,
    ) -> None:
        self.secret = secret
        self.sockets = sockets
        self.me = sockets.addresses  # (host, port) → our socket there
        self.admits = admits
        self.max_forwards = max_forwards
        # the tokens of recent dialogs, two generations of TOKENS_KEPT: a call's INVITE, ACK
        # and BYE need the same one, and a keyed hash costs ten dict lookups
        self._tokens: dict[str, str] = {}
        self._old: dict[str, str] = {}

    def token(self, call_id: str, caller_tag: str) -> str:
        """The value of our Record-Route's ``;pks=`` for a dialog."""
        key = f"{caller_tag}\x00{call_id}"
        made = self._tokens.get(key)
        if made is None:
            made = self._old.get(key)
            if made is None:
                made = dialog_token(self.secret, call_id, caller_tag)
            if len(self._tokens) >= TOKENS_KEPT:
                self._old, self._tokens = self._tokens, {}
            self._tokens[key] = made
        return made

    def hop(self, msg: Message, inbound: Inbound) -> tuple[NextHop | Refusal, Message]:
        """Where ``msg`` goes, with its forwarded copy; or why it does not."""
        is_me = self.sockets.is_me
        routes = msg.routes
        first = routes[0].uri if routes else None
        if first is None or is_me(first) is None:
            return (403, "Forbidden", "no Route of ours"), msg
        if not self.signed(first.param(TOKEN_PARAM) or "", msg):
            return (403, "Forbidden", "our Route is not signed for this dialog"), msg
        base = prepare(msg, inbound, False, self.max_forwards)
        hop = loose_route(base, is_me)
        if isinstance(hop, str):
            return (404, "Not Here", hop), base
        dest = hop.dest
        if self.me.get((dest.host, dest.port)) is not None:
            return (482, "Loop Detected", f"next hop {dest} is this proxy"), base
        if not self.admits(dest.host):
            return (403, "Forbidden", f"next hop {dest} is not a known peer"), base
        return hop, base

    def signed(self, token: str, msg: Message) -> bool:
        """Is ``token`` ours for this dialog (signed with its caller's tag, which is the From
        tag of the caller's requests and the To tag of the callee's)?"""
        if len(token) != 16:
            return False
        call_id = msg.call_id
        for tag in (msg.from_tag, msg.to_tag):
            if tag is not None and hmac.compare_digest(self.token(call_id, tag), token):
                return True
        return False
