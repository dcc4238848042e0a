"""Beside the data path: the admin API's one gate, an ASGI middleware in front of every route.

The API is reached by ``pks``, scripts and curl, and it listens where an operator's browser
can reach it too (loopback). A web page the operator opens must not be able to use it, so
every request passes four checks, in this order, before any route sees it (docs/security.md):

1. **Host** (421): the ``Host`` header names this API — its ``PKS_ADMIN_LISTEN`` address,
   ``localhost``/``127.0.0.1``/``[::1]`` when it listens on loopback or a wildcard, or one of
   ``PKS_ADMIN_HOSTS``. A page whose name was re-pointed at us (DNS rebinding) carries its
   own name, and is refused.
2. **Origin** (403): a browser says where a request comes from; an ``Origin`` that is not
   this API itself, or ``Sec-Fetch-Site: cross-site``/``same-site``, is refused. No CORS
   header is ever sent, so a browser never lets another origin read an answer either.
3. **Token** (401): with ``PKS_ADMIN_TOKEN`` set, ``Authorization: Bearer <token>``, on
   loopback too, compared in constant time.
4. **Content type** (415): a write (POST, PUT, PATCH, DELETE — ``/RPC`` included) says
   ``Content-Type: application/json``. A browser sends that type across origins only after a
   CORS preflight, which this API never grants; the types a form or a "simple" ``fetch`` may
   send without one (``text/plain``, form encodings) are refused before the body is read.

The orchestrators' probes (:data:`PROBES`, GET and HEAD only) pass without these checks: they
are read-only, tell nothing but "live"/"ready" (:mod:`pks.admin.health`), and their clients —
a kubelet, a HEALTHCHECK, a load balancer — send no token and name the API by an address.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from pks.admin.healthcheck import LIVE, READY
from pks.net import Address

__all__ = ["PROBES", "AdminGuard", "HostRule"]

log = logging.getLogger("pks.admin")

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443}
PROBES = frozenset({LIVE, READY})
"""Paths answered to anyone who reaches the API, for GET and HEAD (pks.admin.health)."""
PROBE_METHODS = frozenset({"GET", "HEAD"})

HostRule = tuple[str, int | None]
"""An accepted Host: (host, port), port None for any port."""


class Refusal(Exception):
    def __init__(self, status: int, detail: str, *headers: tuple[bytes, bytes]) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def _canonical(host: str) -> str:
    """An address in its canonical form, a name in lower case without a final dot."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


def _split_host(value: str) -> tuple[str, int | None]:
    """A Host header (or an origin's authority) → (canonical host, port or None); ValueError."""
    if value.startswith("["):
        close = value.find("]")
        host, rest = value[1:close], value[close + 1 :]
        if close < 0 or (rest and not rest.startswith(":")):
            raise ValueError(value)
        port_text = rest[1:] if rest else None
    else:
        host, sep, port_text = value.rpartition(":") if ":" in value else (value, "", "")
        port_text = port_text if sep else None
    if not host or (port_text is not None and not (port_text.isascii() and port_text.isdigit())):
        raise ValueError(value)
    return _canonical(host), None if port_text is None else int(port_text)


def host_rules(listen: Address, extra: Iterable[HostRule]) -> tuple[HostRule, ...]:
    """The Host values the API answers to: its listen address (with its port, or none),
    loopback names when it listens on loopback or on a wildcard (which includes loopback),
    then ``PKS_ADMIN_HOSTS``."""
    address = ipaddress.ip_address(listen.host)
    names = [str(address)]
    if address.is_loopback or address.is_unspecified:
        names += [n for n in LOOPBACK_NAMES if n != str(address)]
    return (*((n, listen.port) for n in names), *extra)


class AdminGuard:
    """ASGI middleware: the four checks of this module's docstring, then the app."""

    def __init__(
        self, app: ASGIApp, *, listen: Address, hosts: Iterable[HostRule], token: str | None
    ) -> None:
        self.app = app
        self.rules = host_rules(listen, hosts)
        self.expected = None if token is None else f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # no websocket route; lifespan is not served
            await self.app(scope, receive, send)
            return
        if scope["path"] in PROBES and scope["method"] in PROBE_METHODS:
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, list[bytes]] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.lower(), []).append(value)
        try:
            self._check(scope["method"], headers)
        except Refusal as refusal:
            client = scope.get("client")
            log.warning(
                "admin API: %s %s from %s refused (%d): %s",
                scope["method"],
                scope["path"],
                f"{client[0]}:{client[1]}" if client else "?",
                refusal.status,
                refusal.detail,
            )
            body = json.dumps({"detail": refusal.detail}).encode()
            length = str(len(body)).encode()
            fields = [(b"content-type", b"application/json"), (b"content-length", length)]
            start = {"type": "http.response.start", "status": refusal.status}
            await send({**start, "headers": [*fields, *refusal.headers]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _check(self, method: str, headers: dict[bytes, list[bytes]]) -> None:
        host = self._host(headers.get(b"host", []))
        self._origin(host, headers)
        if self.expected is not None:
            given = headers.get(b"authorization", [])
            # one header, compared in constant time: the answer's timing says nothing of it
            if len(given) != 1 or not hmac.compare_digest(given[0], self.expected):
                raise Refusal(401, "bearer token required", (b"www-authenticate", b"Bearer"))
        if method in WRITES:
            types = headers.get(b"content-type", [])
            media = types[0].split(b";")[0].strip().lower() if len(types) == 1 else b""
            if media != b"application/json":
                shown = types[0].decode("latin-1") if len(types) == 1 else "none"
                raise Refusal(415, f"{method} needs Content-Type: application/json (got {shown})")

    def _host(self, values: list[bytes]) -> tuple[str, int | None]:
        """The request's Host, if it names this API."""
        text = values[0].decode("latin-1") if len(values) == 1 else ""
        try:
            host, port = _split_host(text)
        except ValueError:
            raise Refusal(421, f"Host {text!r} is not this admin API") from None
        for name, wanted in self.rules:
            if host == name and (wanted is None or port in (None, wanted)):
                return host, port
        raise Refusal(
            421, f"Host {text!r} is not this admin API (PKS_ADMIN_HOSTS lists more names)"
        )

    def _origin(self, host: tuple[str, int | None], headers: dict[bytes, list[bytes]]) -> None:
        """A browser's request from another origin is refused, whatever it asks."""
        site = b",".join(headers.get(b"sec-fetch-site", [])).strip().lower()
        if site in (b"cross-site", b"same-site"):
            raise Refusal(403, f"cross-origin request refused (Sec-Fetch-Site: {site.decode()})")
        for raw in headers.get(b"origin", []):
            origin = raw.decode("latin-1")
            if not self._same_origin(origin, host):
                raise Refusal(403, f"cross-origin request refused (Origin: {origin})")

    @staticmethod
    def _same_origin(origin: str, host: tuple[str, int | None]) -> bool:
        """``origin`` (scheme://host[:port]) is this API as the request named it. Either
        scheme: behind a TLS reverse proxy the page is https, the API plain http."""
        try:
            parts = urlsplit(origin)
            if parts.scheme not in DEFAULT_PORTS or parts.path or parts.query:
                return False
            name, port = _split_host(parts.netloc)
        except ValueError:
            return False  # "null" (a sandboxed page, a file) among them
        default = DEFAULT_PORTS[parts.scheme]
        return (name, port or default) == (host[0], host[1] or default)
