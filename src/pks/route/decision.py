"""Step ⑤ output: what the router decided for one new request.

``route()`` returns exactly one of :class:`Forward` (relay to ``targets`` in order: the
round-robin choice first, then the failover order), :class:`Reply` (answer statelessly with
``code``/``reason``) or :class:`Drop` (ignore silently). ``log`` is one human-readable line
naming the cause, for the proxy's log and counters. Plain frozen values, no behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pks.net import Address, Proto, address
from pks.sip.record import Record

__all__ = ["Decision", "Drop", "Forward", "Peer", "Reply", "Target"]


@dataclass(frozen=True, slots=True)
class Peer:
    """Who sent the request: the matching ``address`` row's group and tag (gateway id)."""

    grp: int
    tag: str | None


class Target(Record):
    """One gateway of a ``dispatcher`` set, resolved at snapshot build time.

    ``uri`` is the destination as stored (after Kamailio's ``sip:`` fix-up); ``host`` is the
    IP literal to send to (IPv6 without brackets); ``socket_name`` is the listening socket to
    send from (attrs ``sockname=``/``socketname=``), None for the default; ``attrs`` is the
    row's raw attrs string. ``dns`` says how a host *name* is turned into addresses at call
    time (RFC 3263, see :mod:`pks.dns`): ``"srv"`` (no port in the URI: SRV, then A/AAAA),
    ``"a"`` (a port is given: A/AAAA only), ``""`` for an IP literal or an address already
    resolved from a name.

    ``ruri_host`` is what replaces the R-URI's host[:port] on a branch to this gateway when
    its set says ``pks_set.ruri_host = 'gateway'`` (Kamailio's ``ds_select_domain``): the
    host and port as the gateway's URI writes them, precomputed here so that a branch only
    splices strings; ``""`` keeps the caller's R-URI host (``ds_select_dst``, the default),
    a single test per branch. ``ruri_transport`` is then the gateway URI's ``transport``
    value (``""`` when it has none), which replaces the R-URI's.

    ``dest`` is ``(host, port)`` as an `Address`, made once here (at snapshot build time for a
    gateway) rather than for every branch. A `Record`, not a dataclass: the proxy builds one
    for every in-dialog request.
    """

    __slots__ = (
        "attrs",
        "dest",
        "dns",
        "host",
        "port",
        "proto",
        "ruri_host",
        "ruri_transport",
        "setid",
        "socket_name",
        "uri",
    )

    def __init__(
        self,
        uri: str,
        host: str,
        port: int,
        proto: Proto,
        socket_name: str | None,
        setid: int,
        attrs: str,
        dns: str = "",
        ruri_host: str = "",
        ruri_transport: str = "",
    ) -> None:
        self.uri = uri
        self.host = host
        self.port = port
        self.proto = proto
        self.socket_name = socket_name
        self.setid = setid
        self.attrs = attrs
        self.dns = dns
        self.ruri_host = ruri_host
        self.ruri_transport = ruri_transport
        self.dest: Address = address(host, port)

    def _fields(self) -> tuple[object, ...]:
        return (
            self.uri,
            self.host,
            self.port,
            self.proto,
            self.socket_name,
            self.setid,
            self.attrs,
            self.dns,
            self.ruri_host,
            self.ruri_transport,
        )

    def at(self, host: str, port: int) -> Target:
        """This gateway at one address its name resolved to (the R-URI still names it, not
        the address: ``ruri_host`` is kept)."""
        return Target(
            self.uri,
            host,
            port,
            self.proto,
            self.socket_name,
            self.setid,
            self.attrs,
            "",
            self.ruri_host,
            self.ruri_transport,
        )


class Forward(Record):
    """Relay the request: ``targets[0]`` now, the others in order on failure.

    A `Record` (built for every call: its ``__init__`` is compiled, a dataclass's is not).
    """

    __slots__ = ("dpid", "intl", "peer", "rule_id", "setid", "targets")

    def __init__(
        self,
        peer: Peer,
        dpid: int,
        rule_id: int,
        setid: int,
        targets: tuple[Target, ...],
        intl: bool = False,  # an international call of a peer with max_intl_calls
    ) -> None:
        self.peer = peer
        self.dpid = dpid
        self.rule_id = rule_id
        self.setid = setid
        self.targets = targets
        self.intl = intl

    def _fields(self) -> tuple[object, ...]:
        return (self.peer, self.dpid, self.rule_id, self.setid, self.targets, self.intl)


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer the request with a final response and do not relay it."""

    code: int
    reason: str
    log: str
    allow: str | None = None  # the Allow header of a 405
    # the ``Proxy.stats`` key counting it (/metrics shows the refusals by reason)
    stat: str = field(default="refused_route", compare=False)
    retry_after: int = 0  # seconds, a Retry-After header when > 0 (a 503 of max_cps)


@dataclass(frozen=True, slots=True)
class Drop:
    """Ignore the request: no reply at all."""

    log: str


Decision = Forward | Reply | Drop
