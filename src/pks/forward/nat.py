"""NAT traversal for signalling: RFC 3581 received/rport and nathelper-style Contact aliases.

Part of step ⑥. ``fix_top_via`` is what the core does to every incoming request's top Via
(``received`` when the sent-by host is not the source IP, ``rport`` filled when asked).
``reply_address`` says where responses to that request go (RFC 3261 §18.2.2 + RFC 3581).
``add_contact_alias`` / ``take_ruri_alias`` reproduce Kamailio's ``set_contact_alias`` and
``handle_ruri_alias``: a Contact that does not match the packet's source gets
``;alias=ip~port~proto`` so that in-dialog requests sent to it reach the real source; the
parameter is removed when the request is sent there.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from pks.net import Address, Proto, address
from pks.sip import Message, NameAddr, Uri, Via, format_host
from pks.sip.params import Params

_PRIVATE: Final = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "192.0.0.0/29")
)
_PROTO_DIGIT: Final = {Proto.UDP: "1", Proto.TCP: "2"}
_DIGIT_PROTO: Final = {"1": Proto.UDP, "2": Proto.TCP}


_MAYBE_PRIVATE: Final = ("10.", "172.", "192.", "100.")


def is_private(host: str) -> bool:
    """RFC 1918 / RFC 6598 address (nathelper's test 1/4 list)."""
    if not host.startswith(_MAYBE_PRIVATE):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.version == 4 and any(ip in net for net in _PRIVATE)


def fix_top_via(via: Via, source: Address) -> str | None:
    """New text for the top Via with received/rport, or None when nothing changes."""
    has_rport = via.has_rport
    if (
        not has_rport
        and via.received is None
        and (via.host == source.host or via.host_bare == source.host)
    ):
        return None  # a peer that writes its own address and asks for no rport
    params = via.params
    text = via.text
    if has_rport and params[-1] == _BARE_RPORT and text.endswith(";rport") and _once(params):
        # the usual spelling (an empty rport last, no received): the text as written + both
        return f"{text[:-6]};received={source.host};rport={source.port}"
    parts = [f"SIP/2.0/{via.transport} {via.host}" + (f":{via.port}" if via.port else "")]
    for name, value in params:
        if name in ("received", "rport"):
            continue
        parts.append(name if value is None else f"{name}={value}")
    parts.append(f"received={source.host}")
    if has_rport:
        parts.append(f"rport={source.port}")
    return ";".join(parts)


_BARE_RPORT: Final = ("rport", None)


def _once(params: Params) -> bool:
    """Exactly one rport parameter and no received one."""
    n = 0
    for name, _ in params:
        if name == "rport":
            n += 1
        elif name == "received":
            return False
    return n == 1


def reply_address(via: Via, source: Address, reliable: bool) -> Address:
    """Where responses to a request go: the source IP; its port with rport or on streams."""
    if reliable or via.has_rport:
        return source
    return address(source.host, via.port or 5060)


def contact_needs_alias(contact: Uri, source: Address) -> bool:
    """nathelper tests 1+2+16 adapted to the Contact: private, or not the packet's source."""
    if not contact.is_sip:
        return False
    host = contact.host_bare
    return is_private(host) or host != source.host or contact.effective_port() != source.port


def alias_value(source: Address, proto: Proto) -> str:
    return f"{source.host}~{source.port}~{_PROTO_DIGIT[proto]}"


def add_contact_alias(msg: Message, source: Address, proto: Proto) -> bool:
    """Append ``;alias=`` to the first Contact URI when it does not match the source."""
    contacts = msg.contacts
    if len(contacts) != 1:
        return False
    c = contacts[0]
    if c.uri.has_param("alias") or not contact_needs_alias(c.uri, source):
        return False
    uri_text = c.uri.raw
    q = uri_text.find("?")
    alias = ";alias=" + alias_value(source, proto)
    uri_text = uri_text + alias if q < 0 else uri_text[:q] + alias + uri_text[q:]
    msg.replace_first_value("contact", _format_name_addr(c, uri_text))
    return True


def _format_name_addr(c: NameAddr, uri_text: str) -> str:
    out = f'"{c.display}" ' if c.display else ""
    out += f"<{uri_text}>"
    for name, value in c.params:
        out += f";{name}" if value is None else f";{name}={value}"
    return out


def take_ruri_alias(uri: Uri) -> tuple[Address, Proto, str] | None:
    """``handle_ruri_alias``: (destination, proto, R-URI without alias) or None."""
    value = uri.param("alias")
    if not value:
        return None
    parts = value.split("~")
    if len(parts) != 3 or parts[2] not in _DIGIT_PROTO:
        return None
    if not (parts[1].isascii() and parts[1].isdigit()):
        return None
    params = tuple(p for p in uri.params if p[0] != "alias")
    stripped = uri.replace_params(params)
    return Address(parts[0], int(parts[1])), _DIGIT_PROTO[parts[2]], format_uri(stripped)


def format_uri(uri: Uri) -> str:
    """Write a SIP URI back from its parts (used after removing a parameter)."""
    out = f"{uri.scheme}:"
    if uri.user is not None:
        out += uri.user
        if uri.password is not None:
            out += ":" + uri.password
        out += "@"
    out += format_host(uri.host)
    if uri.port is not None:
        out += f":{uri.port}"
    for name, value in uri.params:
        out += f";{name}" if value is None else f";{name}={value}"
    if uri.headers is not None:
        out += "?" + uri.headers
    return out
