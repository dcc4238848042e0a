"""Shared network value types: where a message came from and where it goes.

Plain frozen values used by every layer (transport, proxy core, routing); no I/O here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple


class Proto(enum.Enum):
    """A SIP transport protocol we listen on."""

    UDP = "udp"
    TCP = "tcp"

    # members are singletons: identity hashing, done in C (Enum's own hashes the name in
    # Python, and every socket key holds a Proto)
    __hash__ = object.__hash__

    @property
    def via_name(self) -> str:
        return _VIA_NAMES[self]  # not self.value: Enum's value property runs Python code

    @property
    def reliable(self) -> bool:
        return self is not Proto.UDP


_VIA_NAMES: Final = {p: p.value.upper() for p in Proto}


class Address(NamedTuple):
    """A transport address: an IP literal (IPv6 without brackets) and a port.

    Address, Inbound and Send are made for every message: named tuples, built several times
    faster than frozen dataclasses, and as immutable."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SocketInfo:
    """One of our listening sockets, as configured by PKS_LISTEN.

    ``advertise_*`` is the address we show in Via and Record-Route (a proxy behind NAT);
    when unset, the bound address is shown.
    """

    name: str
    proto: Proto
    host: str
    port: int
    advertise_host: str | None = None
    advertise_port: int | None = None

    @property
    def public_host(self) -> str:
        return self.advertise_host or self.host

    @property
    def public_port(self) -> int:
        return self.advertise_port or self.port

    key: tuple[Proto, str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # (proto, host, port): what the transport indexes its sockets by, looked up per send
        object.__setattr__(self, "key", (self.proto, self.host, self.port))

    def __str__(self) -> str:
        return f"{self.proto.value}:{Address(self.host, self.port)}"


class Inbound(NamedTuple):
    """Where a message arrived: our socket, the packet's source, and the TCP connection id."""

    socket: SocketInfo
    source: Address
    conn_id: int | None = None


class Send(NamedTuple):
    """An effect: send ``data`` to ``dest`` from ``socket``.

    For TCP, ``conn_id`` names the connection to reuse when it is still open; otherwise the
    transport reuses any open connection to ``dest`` from that socket, or opens one — unless
    ``connect`` is False: ``dest`` is a peer's own source address (a NAT ``alias``), where
    nothing listens, so the send fails at once when no connection to it is open.
    """

    data: bytes
    dest: Address
    socket: SocketInfo
    conn_id: int | None = None
    connect: bool = True


# A named tuple's __new__ is a lambda compiled from a string: interpreted bytecode on every
# call, even from compiled code. The data path builds its values through these instead.
_new: Final = tuple.__new__
# The classes too, as final names: compiled code reads a final name from a C static, a
# class name from the module's dict.
_ADDRESS: Final = Address
_INBOUND: Final = Inbound
_SEND: Final = Send


def address(host: str, port: int) -> Address:
    """``Address(host, port)``, built without the interpreted constructor."""
    return _new(_ADDRESS, (host, port))


def address_from(addr: tuple[Any, ...]) -> Address:
    """The `Address` of a socket-API address: (host, port), or IPv6's (host, port, flowinfo,
    scope_id)."""
    return _new(_ADDRESS, addr if len(addr) == 2 else addr[:2])


def inbound(socket: SocketInfo, source: Address, conn_id: int | None = None) -> Inbound:
    """``Inbound(socket, source, conn_id)``, built without the interpreted constructor."""
    return _new(_INBOUND, (socket, source, conn_id))


def send_to(
    data: bytes,
    dest: Address,
    socket: SocketInfo,
    conn_id: int | None = None,
    connect: bool = True,
) -> Send:
    """``Send(data, dest, socket, conn_id, connect)``, built without the interpreted
    constructor."""
    return _new(_SEND, (data, dest, socket, conn_id, connect))
