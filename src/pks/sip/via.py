"""Via header values (RFC 3261 §20.42, §18.2; RFC 3581 rport).

Part of step ② (parse). A ``Via`` keeps its value text so the proxy can rewrite only what it must
(received/rport) and forward everything else as written.
"""

from __future__ import annotations

import re

from pks.sip.errors import ParseError
from pks.sip.params import Params, get_param, parse_params
from pks.sip.record import Record

MAGIC = "z9hG4bK"

_VIA = re.compile(
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
        return (self.transport, self.host, self.port, self.params, self.text, self.branch,
                self.has_rport)  # fmt: skip

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


def parse_via(text: str) -> Via:
    m = _VIA.match(text)
    if m is None:
        raise ParseError(f"malformed Via {text.strip()!r}")
    transport, host, port_text, params_text = m.groups()
    port = int(port_text) if port_text else None
    if port is not None and not 0 < port <= 65535:
        raise ParseError(f"Via port {port} out of range")
    params = parse_params(params_text) if params_text else ()
    branch = get_param(params, "branch")
    has_rport = any(k == "rport" for k, _ in params)
    return Via(transport.upper(), host, port, params, text.strip(), branch, has_rport)
