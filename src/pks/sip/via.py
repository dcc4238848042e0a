"""Via header values (RFC 3261 §20.42, §18.2; RFC 3581 rport).

Part of step ② (parse). A ``Via`` keeps its value text so the proxy can rewrite only what it must
(received/rport) and forward everything else as written.
"""

from __future__ import annotations

import re
from typing import Final

from pks.sip.errors import ParseError
from pks.sip.params import Params, get_param, parse_params
from pks.sip.record import Record
from pks.sip.uri import format_host

try:  # the optional accelerator (pks/sip/_via.c) of _parse_usual
    from pks.sip._via import parse_usual as _c_usual
except ImportError:  # not built (pure Python): _parse_usual always
    _c_usual = None  # type: ignore[assignment]

MAGIC: Final = "z9hG4bK"


def via_start(transport: str, host: str, port: int) -> str:
    """A Via we write, up to its branch's value: ``SIP/2.0/UDP host:port;branch=``.

    Here, below both, so that the forwarded requests (pks.forward.request) and the keepalive
    probes (pks.health.probe) write it alike without the one importing the other."""
    return f"SIP/2.0/{transport} {format_host(host)}:{port};branch="


_VIA: Final = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9.!%*_+`'~\-]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?)"
    r"(?:\s*:\s*(\d{1,5}))?\s*(;.*)?\Z",
    re.S,
)


class Via(Record):
    """One via-parm: transport, sent-by host/port, params (names lower-cased)."""

    __slots__ = ("branch", "has_rport", "host", "params", "port", "text", "transport")

    def __init__(
        self,
        transport: str,  # upper-case, e.g. "UDP"
        host: str,  # as written (IPv6 with brackets)
        port: int | None,
        params: Params,
        text: str,  # the value as written
        branch: str | None,  # from params, kept apart: every step reads it
        has_rport: bool,
    ) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.params = params
        self.text = text
        self.branch = branch
        self.has_rport = has_rport

    def _fields(self) -> tuple[object, ...]:
        return (
            self.transport,
            self.host,
            self.port,
            self.params,
            self.text,
            self.branch,
            self.has_rport,
        )

    @property
    def received(self) -> str | None:
        return get_param(self.params, "received")

    @property
    def maddr(self) -> str | None:
        return get_param(self.params, "maddr")

    @property
    def rport(self) -> int | None:
        v = get_param(self.params, "rport")
        return int(v) if v and v.isascii() and v.isdigit() else None

    @property
    def host_bare(self) -> str:
        h = self.host
        return h[1:-1].lower() if h.startswith("[") else h.lower()

    @property
    def sent_by(self) -> str:
        return f"{self.host.lower()}:{self.port or 5060}"

    @property
    def rfc3261(self) -> bool:
        b = self.branch
        return b is not None and b.startswith(MAGIC) and len(b) > len(MAGIC)


_TRANSPORTS: Final = {t: t for t in ("UDP", "TCP", "TLS", "SCTP", "WS", "WSS")}


def parse_via(text: str) -> Via:
    """Parse one via-parm. The usual spelling (``SIP/2.0/UDP host[:port][;params]``, one
    blank, a token host) is read by the accelerator when built (pks/sip/_via.c), else with
    string methods; anything else — other blanks, IPv6, an unusual transport, a malformed
    value — takes the general way (`parse_via_general`), which gives the same `Via` or the
    error."""
    if _c_usual is not None:
        f = _c_usual(text)
        if f is not None:
            return Via(f[0], f[1], f[2], f[3], f[4], f[5], f[6])
    via = _parse_usual(text)
    return via if via is not None else parse_via_general(text)


def _parse_usual(text: str) -> Via | None:
    t = text.strip()
    if not t.startswith("SIP/2.0/"):
        return None
    blank = t.find(" ", 8)
    if blank < 0:
        return None
    transport = _TRANSPORTS.get(t[8:blank])
    if transport is None:
        return None
    semi = t.find(";", blank)
    sent_by = t[blank + 1 :] if semi < 0 else t[blank + 1 : semi]
    host, colon, port_text = sent_by.partition(":")
    if not host or host[0] == "." or host[0] == "-" or host[-1] == "." or host[-1] == "-":
        return None
    # letters, digits, '.' and '-' only: three C calls, where a loop looked up every character
    if not (host.isascii() and host.replace(".", "").replace("-", "").isalnum()):
        return None
    port: int | None = None
    if colon:
        port = _usual_port(port_text)
        if not port:
            return None
    return _via(transport, host, port, t[semi:] if semi >= 0 else None, t)


def _usual_port(text: str) -> int:
    """A port of 1 to 5 ASCII digits, 1..65535; 0 for anything else."""
    if not (0 < len(text) <= 5 and text.isascii() and text.isdigit()):
        return 0
    port = int(text)
    return port if port <= 65535 else 0


def parse_via_general(text: str) -> Via:
    """Parse one via-parm by the grammar's regex (every form the grammar allows)."""
    m = _VIA.match(text)
    if m is None:
        raise ParseError(f"malformed Via {text.strip()!r}")
    transport, host, port_text, params_text = m.groups()
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port <= 65535:
        raise ParseError(f"Via port {port} out of range")
    return _via(transport.upper(), host, port, params_text, text.strip())


def _via(transport: str, host: str, port: int | None, params_text: str | None, text: str) -> Via:
    """The `Via` of parsed parts (both readers end here); ``params_text`` from its ';'."""
    params = parse_params(params_text) if params_text else ()
    branch = get_param(params, "branch")
    has_rport = any(k == "rport" for k, _ in params)
    return Via(transport, host, port, params, text, branch, has_rport)
