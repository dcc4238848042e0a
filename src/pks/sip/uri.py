"""SIP/SIPS URIs (RFC 3261 §19.1): user, password, host (IPv4, [IPv6], name), port, params, headers.

Part of step ② (parse). ``parse_uri`` is strict enough to reject what RFC 4475 calls malformed
(spaces, empty host, bad port) and liberal elsewhere. Other schemes (tel:, unknown ones) parse to
a ``Uri`` with only ``scheme`` and ``opaque`` set, so that sanity can answer 416 instead of 400.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_to_bytes

from pks.sip.errors import ParseError
from pks.sip.memo import Memo
from pks.sip.record import Record

_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
_HOSTNAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9.])?\Z|[A-Za-z0-9]\Z")
_IPV6REF: Final = re.compile(r"\[[0-9A-Fa-f:.]+\]\Z")
_NOT_IN_URI: Final = re.compile(r"[\s<>\"]")


class Uri(Record):
    """A parsed URI. For sip/sips every field is set; for other schemes only scheme/opaque.

    A `Record`, not a frozen dataclass: one is built for every R-URI, From and To parsed, and
    a dataclass's ``__init__`` stays interpreted under mypyc. ``raw`` (the text it was parsed
    from) does not count in equality and hash."""

    __slots__ = ("headers", "host", "opaque", "params", "password", "port", "raw", "scheme", "user")

    def __init__(
        self,
        scheme: str,
        user: str | None = None,  # raw, still %-escaped
        password: str | None = None,
        host: str = "",  # as written; IPv6 keeps its brackets
        port: int | None = None,
        params: tuple[tuple[str, str | None], ...] = (),  # names lower-cased, values as written
        headers: str | None = None,
        opaque: str = "",  # everything after "scheme:" for non-SIP schemes
        raw: str = "",
    ) -> None:
        self.scheme = scheme
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = params
        self.headers = headers
        self.opaque = opaque
        self.raw = raw

    def _fields(self) -> tuple[object, ...]:
        return (
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            self.params,
            self.headers,
            self.opaque,
        )

    def replace_params(self, params: tuple[tuple[str, str | None], ...]) -> Uri:
        """The same URI with other parameters (``raw`` still the original text)."""
        return Uri(
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            params,
            self.headers,
            self.opaque,
            self.raw,
        )

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    @property
    def user_decoded(self) -> str | None:
        """User part with %HEX escapes decoded once (RFC 3261 §19.1.4)."""
        if self.user is None or "%" not in self.user:
            return self.user
        return unquote_to_bytes(self.user).decode("utf-8", "surrogateescape")

    @property
    def host_bare(self) -> str:
        """Host without IPv6 brackets, lower-cased (for comparisons and sockets)."""
        h = self.host
        if h.startswith("["):
            h = h[1:-1]
        return h.lower()

    def param(self, name: str) -> str | None:
        """Value of a URI parameter ('' when present without value), None when absent."""
        for k, v in self.params:
            if k == name:
                return "" if v is None else v
        return None

    def has_param(self, name: str) -> bool:
        return any(k == name for k, _ in self.params)

    @property
    def transport(self) -> str:
        t = self.param("transport")
        return t.lower() if t else ("tls" if self.scheme == "sips" else "udp")

    def default_port(self) -> int:
        return 5061 if self.scheme == "sips" else 5060

    def effective_port(self) -> int:
        return self.port if self.port is not None else self.default_port()


def _split_params(text: str) -> tuple[tuple[str, str | None], ...]:
    out: list[tuple[str, str | None]] = []
    for part in text.split(";"):
        if not part:
            raise ParseError("empty URI parameter")
        name, eq, value = part.partition("=")
        if not name:
            raise ParseError("URI parameter without a name")
        out.append((name.lower(), value if eq else None))
    return tuple(out)


def _parse_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError("unterminated IPv6 reference in URI")
        host, rest = text[: end + 1], text[end + 1 :]
        if not _IPV6REF.match(host):
            raise ParseError(f"bad IPv6 reference {host!r}")
    else:
        host, _, port_text = text.partition(":")
        rest = ":" + port_text if _ else ""
        if not host or not _HOSTNAME.match(host):
            raise ParseError(f"bad host {host!r} in URI")
    if not rest:
        return host, None
    if not rest.startswith(":") or not (rest[1:].isascii() and rest[1:].isdigit()) or len(rest) > 6:
        raise ParseError(f"bad port in URI host {text!r}")
    port = int(rest[1:])
    if port > 65535:
        raise ParseError(f"port {port} out of range")
    return host, port


_parsed: Final[Memo[Uri]] = Memo(8192)


def parse_uri(text: str) -> Uri:
    """Parse a URI; raises ParseError on a malformed SIP/SIPS URI.

    Memoized (`Memo`): the same text — a caller's Contact, a From or To that every message
    of a call repeats — is parsed once; ``Uri`` is immutable, so sharing is safe.
    """
    uri = _parsed.get(text)
    return _parsed.put(text, _parse_uri(text)) if uri is None else uri


def _parse_uri(text: str) -> Uri:
    if _NOT_IN_URI.search(text):
        raise ParseError(f"illegal character in URI {text!r}")
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.match(scheme):
        raise ParseError(f"URI without a valid scheme: {text!r}")
    scheme = scheme.lower()
    if scheme not in ("sip", "sips"):
        return Uri(scheme=scheme, opaque=rest, raw=text)
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        user, pcolon, pw = userinfo.partition(":")
        password = pw if pcolon else None
        if not user:
            raise ParseError("empty user part before '@'")
    headers: str | None = None
    qmark = rest.find("?")
    if qmark >= 0:
        rest, headers = rest[:qmark], rest[qmark + 1 :]
    semi = rest.find(";")
    if semi >= 0:
        hostport, params = rest[:semi], _split_params(rest[semi + 1 :])
    else:
        hostport, params = rest, ()
    host, port = _parse_hostport(hostport)
    return Uri(scheme, user, password, host, port, params, headers, raw=text)


def format_host(host: str) -> str:
    """An IP/host for use in a URI or Via: IPv6 literals get brackets."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host
