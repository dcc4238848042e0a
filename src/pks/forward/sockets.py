"""Which of our listening sockets: the one a URI names, and the one a request leaves by.

Part of step ⑥, pure and sans-IO: a `Sockets` is built once from the bound sockets and
answers two questions for any set of them (UDP and TCP — and TLS, when `Proto` has it — on
one or several addresses, named or not):

- `Sockets.is_me`: the socket a Route, Record-Route or Request-URI names — the one with the
  same address, port and transport. Address: the bound or advertised host (for a wildcard
  bind, any of the host's addresses); port: the bound or advertised one. A URI that names our
  address and port with a transport we do not listen on there is still ours (the entry is
  ours to remove): the socket of another transport on that address stands for it.
- `Sockets.pick`: the socket a request of transport ``proto`` leaves by —

  1. the socket called ``name`` (a gateway's ``socketname=``, else ``PKS_DEFAULT_SOCKET``) of
     that transport. A name only sockets of other transports carry (default names are
     ``udp:HOST:PORT``) stands for its address: the ``proto`` socket on that address;
  2. else the socket the request came in on, or the ``proto`` socket on its address (same
     port first: ``udp:A:5060`` in, ``tcp:A:5060`` out);
  3. else the first ``proto`` socket.

  Only a name that no socket carries, or whose address has no socket of the transport, is
  logged — once per name and transport, not per message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from pks.net import Proto, SocketInfo
from pks.sip import Uri

__all__ = ["Sockets", "uri_proto"]

log: Final = logging.getLogger("pks.proxy")

_PROTOS: Final[dict[str, Proto]] = {p.value: p for p in Proto}
_WILDCARDS: Final = ("0.0.0.0", "::")


def uri_proto(uri: Uri) -> Proto | None:
    """The transport a SIP URI asks for (UDP when it names none), None when we have none
    of that name (tls while `Proto` has no TLS, sctp, ws...)."""
    return _PROTOS.get(uri.transport)


class Sockets:
    """Our listening sockets, indexed for `is_me` and `pick` (built once, then read only)."""

    __slots__ = (
        "_at",
        "_by_name",
        "_first",
        "_named",
        "_sibling",
        "_warned",
        "addresses",
        "all",
        "default",
    )

    def __init__(
        self,
        sockets: Iterable[SocketInfo],
        local_hosts: Iterable[str] = (),
        default: str | None = None,
    ) -> None:
        self.all: tuple[SocketInfo, ...] = tuple(sockets)
        self.default = default or None  # PKS_DEFAULT_SOCKET ("" is unset)
        locals_ = tuple(h.lower() for h in local_hosts)
        # (host, port) a URI may name → the sockets there, in configuration order
        self._at: dict[tuple[str, int], list[SocketInfo]] = {}
        self._named: dict[tuple[str, Proto], SocketInfo] = {}
        self._by_name: dict[str, SocketInfo] = {}  # a name → its first socket
        self._first: dict[Proto, SocketInfo] = {}
        self._sibling: dict[tuple[tuple[Proto, str, int], Proto], SocketInfo] = {}
        self._warned: set[tuple[str, Proto]] = set()
        for sock in self.all:
            hosts = {sock.public_host.lower(), sock.host.lower()}
            if sock.host in _WILDCARDS:
                hosts.update(locals_)
            for host in sorted(hosts):
                for port in dict.fromkeys((sock.public_port, sock.port)):
                    there = self._at.setdefault((host, port), [])
                    if sock not in there:
                        there.append(sock)
            self._named.setdefault((sock.name, sock.proto), sock)
            self._by_name.setdefault(sock.name, sock)
            self._first.setdefault(sock.proto, sock)
        # (host, port) → the first socket there, whatever its transport: "is it us?"
        self.addresses: dict[tuple[str, int], SocketInfo] = {k: v[0] for k, v in self._at.items()}
        for sock in self.all:
            for proto in Proto:
                other = self._on_address(sock, proto)
                if other is not None:
                    self._sibling[(sock.key, proto)] = other

    def _on_address(self, sock: SocketInfo, proto: Proto) -> SocketInfo | None:
        """The ``proto`` socket on ``sock``'s address: the same port first, then any."""
        if sock.proto is proto:
            return sock
        same_host = [s for s in self.all if s.proto is proto and s.host == sock.host]
        for other in same_host:
            if other.port == sock.port:
                return other
        return same_host[0] if same_host else None

    def is_me(self, uri: Uri) -> SocketInfo | None:
        """The socket ``uri`` names (address, port and transport), or None: not us."""
        if not uri.is_sip:
            return None
        there = self._at.get((uri.host_bare, uri.effective_port()))
        if there is None:
            return None
        proto = uri_proto(uri)
        for sock in there:
            if sock.proto is proto:
                return sock
        return there[0]

    def sibling(self, sock: SocketInfo, proto: Proto) -> SocketInfo | None:
        """``sock`` itself for ``proto``, else the ``proto`` socket on its address, if any."""
        if sock.proto is proto:
            return sock
        return self._sibling.get((sock.key, proto))

    def pick(self, name: str | None, proto: Proto, inbound: SocketInfo | None) -> SocketInfo | None:
        """The socket to send with ``proto`` (see the module docstring), None: we have none."""
        name = name or self.default
        if name is not None:
            sock = self._named.get((name, proto))
            if sock is not None:
                return sock
            named = self._by_name.get(name)
            if named is not None:
                sock = self._sibling.get((named.key, proto))
                if sock is not None:
                    return sock
            self._warn(name, proto, named is not None)
        if inbound is not None:
            sock = inbound if inbound.proto is proto else self._sibling.get((inbound.key, proto))
            if sock is not None:
                return sock
        return self._first.get(proto)

    def _warn(self, name: str, proto: Proto, known: bool) -> None:
        if (name, proto) in self._warned or len(self._warned) >= 1024:
            return
        self._warned.add((name, proto))
        if known:
            log.warning(
                "socket %r has no %s socket on its address; using the default",
                name,
                proto.value,
            )
        else:
            log.warning("no socket named %r; using the default", name)
