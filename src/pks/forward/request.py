"""Writing the forwarded request (RFC 3261 §16.6): Max-Forwards, Record-Route, our Via.

Part of step ⑥. ``prepare`` does once per incoming request what every branch shares (top Via
fixed for NAT, Max-Forwards decremented, preloaded Route removed on initial requests, Contact
alias); ``for_branch`` adds what depends on the outgoing socket: Record-Route (double when the
request leaves by another socket or transport, Kamailio rr's ``r2=on`` pair, outgoing first)
and our Via with a fresh RFC 3261 branch; and what depends on the gateway: the R-URI's host,
port and transport become the gateway's when its set asks for it (``pks_set.ruri_host =
'gateway'``, Kamailio's ``ds_select_domain``; see :mod:`pks.route.dispatch`).

Our Record-Route URIs are signed: ``;pks=`` carries a keyed hash of the dialog's Call-ID and
its caller's tag (:func:`dialog_token`) that only the instances sharing our secret can
produce, so an in-dialog request is relayed only for a dialog set up through us
(docs/security.md).
"""

from __future__ import annotations

import hashlib
from typing import Final

from pks.forward.nat import add_contact_alias, fix_top_via
from pks.net import Inbound, Proto, SocketInfo
from pks.route.decision import Target
from pks.sip import Message, format_host
from pks.sip.via import via_start

#: Methods that create a dialog and therefore get Record-Route.
DIALOG_CREATING: Final = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
_ALIASED: Final = DIALOG_CREATING | {"UPDATE"}  # requests whose Contact gets the NAT alias


def prepare(msg: Message, inbound: Inbound, initial: bool, max_forwards: int) -> Message:
    """The copy of ``msg`` every branch starts from: top Via fixed for NAT, Max-Forwards
    decremented, a preloaded Route removed (initial requests), the Contact's NAT alias."""
    base = msg.copy()
    fixed = fix_top_via(msg.top_via, inbound.source)
    if fixed is not None:
        base.replace_first_value("via", fixed)
    decrement_max_forwards(base, max_forwards)
    if initial:
        base.remove("route")
    if msg.get("contact") is not None and msg.method in _ALIASED:
        add_contact_alias(base, inbound.source, inbound.socket.proto)
    return base


def decrement_max_forwards(msg: Message, limit: int) -> None:
    """Max-Forwards - 1, clamped to ``limit``; added with ``limit`` when absent (§16.6 step 3)."""
    mf = msg.max_forwards
    msg.set("max-forwards", str(limit if mf is None else min(mf, limit) - 1))


TOKEN_PARAM: Final = "pks"


def dialog_token(secret: bytes, call_id: str, tag: str) -> str:
    """64 bits of a keyed BLAKE2b over the dialog's Call-ID and one of its tags."""
    data = f"{call_id}\x00{tag}".encode("utf-8", "surrogateescape")
    return hashlib.blake2b(data, digest_size=8, key=secret).hexdigest()


def rr_uri(sock: SocketInfo, double: bool, token: str = "") -> str:
    transport = ";transport=tcp" if sock.proto is Proto.TCP else ""
    r2 = ";r2=on" if double else ""
    signed = f";{TOKEN_PARAM}={token}" if token else ""
    return f"<sip:{format_host(sock.public_host)}:{sock.public_port}{transport}{r2}{signed};lr>"


def via_value(sock: SocketInfo, branch: str) -> str:
    return _written(sock).via + branch


class _Written:
    """What every request leaving by one socket carries: its Record-Route URIs up to the
    token, the start of its Via. Made at the socket's first use, not per branch."""

    __slots__ = ("rr_double", "rr_single", "sock", "via")

    def __init__(self, sock: SocketInfo) -> None:
        self.sock = sock
        self.rr_single = _rr_head(sock, False)
        self.rr_double = _rr_head(sock, True)
        self.via = via_start(sock.proto.via_name, sock.public_host, sock.public_port)


def _rr_head(sock: SocketInfo, double: bool) -> str:
    """``<sip:host:port;...;pks=`` (the token and ``;lr>`` follow)."""
    full = rr_uri(sock, double, "-")
    return full[: full.index(f";{TOKEN_PARAM}=") + len(TOKEN_PARAM) + 2]


_written_by: Final[dict[int, _Written]] = {}  # id(SocketInfo) → its lines (the entry names it)


def _written(sock: SocketInfo) -> _Written:
    found = _written_by.get(id(sock))
    if found is None or found.sock is not sock:
        if len(_written_by) >= 1024:  # sockets come and go with reloads: no unbounded growth
            _written_by.clear()
        found = _written_by[id(sock)] = _Written(sock)
    return found


def rewrite_ruri_host(ruri: str, hostport: str, transport: str) -> str:
    """``ruri`` with its host[:port] replaced by ``hostport`` and its ``transport`` parameter
    by ``transport`` (dropped when ``""``); the user part, the other parameters and the
    headers are kept as written. A URI that is not sip/sips is returned unchanged.

    Splits the text the way :func:`pks.sip.uri.parse_uri` does (the first ``@`` ends the
    user part), so the parts are those the router read."""
    scheme, colon, rest = ruri.partition(":")
    if not colon or scheme.lower() not in ("sip", "sips"):
        return ruri
    at = rest.find("@")
    user = rest[: at + 1] if at >= 0 else ""
    rest = rest[at + 1 :]
    headers = ""
    qmark = rest.find("?")
    if qmark >= 0:
        rest, headers = rest[:qmark], rest[qmark:]
    params = rest.split(";")[1:]
    kept = [p for p in params if p.partition("=")[0].strip().lower() != "transport"]
    if transport:
        kept.append("transport=" + transport)
    tail = "".join(";" + p for p in kept)
    return f"{scheme}:{user}{hostport}{tail}{headers}"


def for_branch(
    base: Message,
    inbound: SocketInfo,
    outbound: SocketInfo,
    branch: str,
    token: str | None,
    target: Target | None = None,
) -> Message:
    """The request as it leaves by ``outbound`` on one branch; Record-Routed with ``token``
    (its dialog's :func:`dialog_token`) unless that is None; sent to ``target``, whose
    ``ruri_host`` (when set) replaces the R-URI's host."""
    msg = base.copy()
    if target is not None and target.ruri_host and msg.ruri is not None:
        msg.set_ruri(rewrite_ruri_host(msg.ruri, target.ruri_host, target.ruri_transport))
    out = _written(outbound)
    if token is not None:
        tail = token + ";lr>"
        if inbound.key != outbound.key or inbound.public_host != outbound.public_host:
            msg.prepend("record-route", _written(inbound).rr_double + tail)
            msg.prepend("record-route", out.rr_double + tail)
        else:
            msg.prepend("record-route", out.rr_single + tail)
    msg.prepend("via", out.via + branch)
    return msg
