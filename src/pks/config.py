"""Role: configuration, beside the data path. One `Settings` from ``PKS_*`` env and TOML.

Read once at start-up: ``pks run`` builds a `Settings`; the server wiring hands
``settings.sockets`` to the transport and the timers/limits to the proxy core.

Sources, highest priority first: keyword arguments (tests, CLI flags), environment variables
``PKS_<FIELD>`` (case-insensitive), then the TOML file named by ``PKS_CONFIG`` (keys are the
field names in lower case, e.g. ``fr_timer = 5.0``). With nothing set, the proxy listens on
UDP and TCP port 5060 and stores its tables in ``./pks.db``.

Invariant: a bad value never starts the proxy. Every problem is reported as one `ConfigError`
whose message names the variable (``PKS_FR_TIMER: ...``) or the file key, and for
``PKS_LISTEN`` the entry and what is wrong with it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from pks.health.probe import AliveCodes, ProbeConfig
from pks.net import Address, Proto, SocketInfo
from pks.route.algorithms import parse_algorithm

__all__ = ["ConfigError", "Settings", "parse_admin_hosts", "parse_dns_servers", "parse_listen"]

ENV_PREFIX = "PKS_"
MAX_WORKERS = 64  # the Via branch carries the worker index in two hex digits
CONFIG_FILE_VAR = "PKS_CONFIG"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# A socket name travels in dispatcher attrs (``socketname=NAME;...``): no ``;``, ``,``, ``=``
# or blanks. ``:`` and brackets are allowed so that default names (``udp:[::1]:5060``) can be
# written back by an operator.
_NAME = re.compile(r"[A-Za-z0-9_.:\[\]-]+")
# RFC 1123 host name (for ``advertise=``); the last label may not be all digits (RFC 3696 §2),
# which keeps a mistyped IPv4 address such as 203.0.113.500 from passing as a name.
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"(?![0-9]+\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?"
)


class ConfigError(ValueError):
    """A configuration value is wrong; the message says which one and why."""


# --- PKS_LISTEN ------------------------------------------------------------------------------


def _split_hostport(text: str) -> tuple[str, str | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` → (host without brackets, port text)."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise ConfigError(f"missing ']' in {text!r}")
        host, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(f"unexpected {rest!r} after ']' in {text!r}")
        if ":" not in host:
            raise ConfigError(f"brackets are for IPv6 addresses only, got {text!r}")
        return host, rest[1:] if rest else None
    if text.count(":") > 1:
        raise ConfigError(f"IPv6 address must be written in brackets, e.g. [::1]:5060: {text!r}")
    host, sep, port = text.partition(":")
    return host, port if sep else None


def _ip(text: str) -> str:
    """Validate an IP literal and return its canonical form."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ConfigError(f"{text!r} is not an IP address") from None


def _port(text: str | None, *, allow_zero: bool) -> int:
    if text is None or text == "":
        raise ConfigError("missing port")
    lowest = 0 if allow_zero else 1
    if not text.isascii() or not text.isdigit() or not lowest <= int(text) <= 65535:
        raise ConfigError(f"port must be a number from {lowest} to 65535, got {text!r}")
    return int(text)


def parse_dns_servers(text: str) -> tuple[Address, ...]:
    """``ip[:port],…`` (IPv6 as ``[v6]:port``) → addresses, port 53 when not given."""
    servers = []
    for entry in text.split(","):
        host, port = _split_hostport(entry.strip())
        servers.append(Address(_ip(host), 53 if port is None else _port(port, allow_zero=False)))
    return tuple(servers)


def _advertise(text: str) -> tuple[str, int | None]:
    try:
        host, port = _split_hostport(text)
        if ":" in host or re.fullmatch(r"[0-9.]+", host):
            host = _ip(host)
        elif not _HOSTNAME.fullmatch(host):
            raise ConfigError(f"{host!r} is neither an IP address nor a host name")
        return host, None if port is None else _port(port, allow_zero=False)
    except ConfigError as exc:
        raise ConfigError(f"advertise={text}: {exc}") from None


def _listen_entry(entry: str) -> SocketInfo:
    head, *params = entry.split(";")
    proto_text, sep, hostport = head.strip().partition(":")
    try:
        proto = Proto(proto_text.lower())
    except ValueError:
        expected = " or ".join(p.value for p in Proto)
        raise ConfigError(f"unknown protocol {proto_text!r} (expected {expected})") from None
    if not sep:
        raise ConfigError("expected proto:host:port")
    host_text, port_text = _split_hostport(hostport)
    host, port = _ip(host_text), _port(port_text, allow_zero=True)
    name = f"{proto.value}:{Address(host, port)}"
    advertise: tuple[str | None, int | None] = (None, None)
    seen: set[str] = set()
    for param in params:
        key, eq, value = (part.strip() for part in param.partition("="))
        if key in seen:
            raise ConfigError(f"{key}= given twice")
        seen.add(key)
        if key == "name" and eq and _NAME.fullmatch(value):
            name = value
        elif key == "name":
            raise ConfigError(f"bad name {value!r} (letters, digits and _.:[]- only)")
        elif key == "advertise" and eq:
            advertise = _advertise(value)
        else:
            raise ConfigError(f"unknown option {param.strip()!r} (expected name= or advertise=)")
    return SocketInfo(name, proto, host, port, *advertise)


def parse_listen(text: str) -> tuple[SocketInfo, ...]:
    """Parse ``PKS_LISTEN``, comma-separated ``proto:host:port[;name=N][;advertise=HOST[:PORT]]``.

    The default name of a socket is ``proto:host:port`` as written (IPv6 in brackets). Several
    sockets may share a name (one UDP and one TCP "public"), but not within one protocol.
    Raises `ConfigError` naming the entry (1-based) and the problem.
    """
    sockets: list[SocketInfo] = []
    for number, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        try:
            if not entry:
                raise ConfigError("empty entry")
            sock = _listen_entry(entry)
            for other_number, other in enumerate(sockets, start=1):
                if other.key == sock.key:
                    raise ConfigError(f"same socket as entry {other_number}")
                if (other.name, other.proto) == (sock.name, sock.proto):
                    raise ConfigError(
                        f"name {sock.name!r} already used by "
                        f"{sock.proto.value.upper()} entry {other_number}"
                    )
        except ConfigError as exc:
            raise ConfigError(f"entry {number} {entry!r}: {exc}") from None
        sockets.append(sock)
    return tuple(sockets)


# --- PKS_ADMIN_HOSTS -------------------------------------------------------------------------


def parse_admin_hosts(text: str) -> tuple[tuple[str, int | None], ...]:
    """Parse ``PKS_ADMIN_HOSTS``, comma-separated ``NAME[:PORT]`` or ``IP[:PORT]`` (IPv6 in
    brackets when a port follows: ``[2001:db8::1]:8091``).

    Each entry is (host, port or None for any port): a name in lower case without a final
    dot, an address in its canonical form. Raises `ConfigError` naming the entry (1-based).
    """
    hosts: list[tuple[str, int | None]] = []
    for number, raw in enumerate(text.split(","), start=1):
        entry = raw.strip()
        try:
            if not entry:
                raise ConfigError("empty entry")
            if entry.count(":") > 1 and not entry.startswith("["):
                hosts.append((_ip(entry), None))  # a bare IPv6 address: no port
                continue
            host, port = _split_hostport(entry)
            try:
                host = _ip(host)
            except ConfigError:
                if not _HOSTNAME.fullmatch(host):
                    raise ConfigError("expected a host name or an IP address") from None
                host = host.lower().rstrip(".")
            hosts.append((host, None if port is None else _port(port, allow_zero=False)))
        except ConfigError as exc:
            raise ConfigError(f"entry {number} {entry!r}: {exc}") from None
    return tuple(hosts)


# --- Settings --------------------------------------------------------------------------------


class Settings(BaseSettings):
    """pks-sip-proxy settings. Each field is read from ``PKS_<NAME>`` or from the TOML file.

    Fields (environment variable, default):

    - ``PKS_LISTEN`` (``udp:0.0.0.0:5060,tcp:0.0.0.0:5060``): the sockets to listen on.
    - ``PKS_DB_URL`` (``sqlite:///./pks.db``): SQLAlchemy URL of the Kamailio-style tables.
    - ``PKS_FR_TIMER`` (5.0 s), ``PKS_FR_INV_TIMER`` (120.0 s), ``PKS_FAILOVER_CODES``
      (``408,500,503``): when to try the next gateway.
    - ``PKS_UNKNOWN_SOURCE`` (``drop``): what to do with a new request from an unknown address.
    - ``PKS_MAX_FORWARDS`` (70), ``PKS_TCP_IDLE_TIMEOUT`` (120.0 s), ``PKS_MAX_MESSAGE_SIZE``
      (65535 bytes), ``PKS_MAX_HEADERS`` (256 header fields in one message; docs/security.md).
    - ``PKS_TCP_MAX_CONNECTIONS`` (4096), ``PKS_TCP_MAX_PER_SOURCE`` (64),
      ``PKS_TCP_MESSAGE_TIMEOUT`` (10.0 s), ``PKS_TCP_MAX_OUTPUT`` (1048576 bytes): the TCP
      bounds (docs/security.md).
    - ``PKS_DB_POLL_INTERVAL`` (1.0 s): change check / liveness period of the database.
    - ``PKS_SNAPSHOT_CACHE`` (unset): file keeping the last good rows, to start without the
      database.
    - ``PKS_DEFAULT_SOCKET`` (unset): socket name used when a gateway names none.
    - ``PKS_ADMIN_LISTEN`` (``127.0.0.1:8091``), ``PKS_ADMIN_TOKEN`` (unset): the admin API
      (the token, when set, is required on loopback too).
    - ``PKS_ADMIN_HOSTS`` (unset): more names the admin API answers to in the Host header
      (besides its listen address, and localhost/127.0.0.1/[::1] on loopback); see
      docs/security.md.
    - ``PKS_LOG_LEVEL`` (``INFO``), ``PKS_SERVER_HEADER`` (``pks-sip-proxy``).
    - ``PKS_DS_PING_INTERVAL`` (10 s), ``PKS_DS_PROBING_THRESHOLD`` (3),
      ``PKS_DS_INACTIVE_THRESHOLD`` (2), ``PKS_DS_PROBING_MODE`` (``all``),
      ``PKS_DS_PING_FROM``, ``PKS_DS_PING_REPLY_CODES``: gateway health probing.
    - ``PKS_DISPATCHER_ALG`` (``round-robin``): default distribution algorithm.
    - ``PKS_DNS_SERVERS`` (unset: the system's): DNS servers for gateway names.
    - ``PKS_CALL_MAX_DURATION`` (14400 s): how long an answered call counts against limits
      without a BYE.
    - ``PKS_GC_SWEEP_INTERVAL`` (3600 s): full garbage-collector sweeps (pks.heap).
    - ``PKS_SECRET`` (unset: read from ``PKS_SECRET_FILE``, ``pks.secret``),
      ``PKS_ALLOWED_METHODS`` (``INVITE``), ``PKS_MAX_USER_LENGTH`` (64),
      ``PKS_MAX_TRANSACTIONS`` (20000): the edge, see docs/security.md.
    - ``PKS_RATE_LIMIT`` (0: off), ``PKS_RATE_PEER_LIMIT`` (0: off), ``PKS_RATE_WINDOW``
      (2 s), ``PKS_BAN_TIME`` (300 s), ``PKS_INTL_PREFIXES`` (``00,+``),
      ``PKS_LOCAL_PREFIXES`` (unset), ``PKS_REDIS_URL`` (unset): floods and fraud, see
      docs/security.md.
    - ``PKS_WORKERS`` (1): worker processes (``auto``: one per core); see docs/workers.md.
    - ``PKS_CDR_SINKS`` (unset: no call records), ``PKS_CDR_FILE``, ``PKS_CDR_WEBHOOK_URL``,
      ``PKS_CDR_WEBHOOK_TOKEN``, ``PKS_CDR_WEBHOOK_TIMEOUT`` (10 s), ``PKS_CDR_DB_URL``
      (``PKS_DB_URL``), ``PKS_CDR_SPOOL`` (``pks-cdr-spool``), ``PKS_CDR_SPOOL_MAX`` (256 MiB),
      ``PKS_CDR_QUEUE_MAX`` (100000), ``PKS_CDR_BATCH`` (500), ``PKS_CDR_RETRY_MAX`` (60 s):
      call records, see docs/cdr.md.
    - ``PKS_CONFIG`` (unset): path of a TOML file holding any of the above; environment
      variables win over the file.

    Building a `Settings` raises `ConfigError` (never a pydantic error) when a value is wrong.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    listen: str = Field(
        "udp:0.0.0.0:5060,tcp:0.0.0.0:5060",
        description=(
            "Sockets to listen on, comma-separated: proto:host:port[;name=NAME]"
            "[;advertise=HOST[:PORT]]. proto is udp or tcp; host is an IP address (IPv6 in "
            "brackets: udp:[::1]:5060); port 0 picks a free port. name= groups sockets that "
            "gateways select with socketname=NAME (default: proto:host:port); one UDP and one "
            "TCP socket may share a name. advertise= is the address shown in Via and "
            "Record-Route when the proxy is behind NAT (port defaults to the bound one). "
            "In the TOML file, a list of entries is also accepted."
        ),
    )
    db_url: str = Field(
        "sqlite:///./pks.db",
        description="SQLAlchemy database URL: sqlite:///PATH, postgresql://USER@HOST/DB "
        "(psycopg 3), mysql://USER@HOST/DB or mariadb://… (PyMySQL).",
    )
    fr_timer: float = Field(
        5.0,
        gt=0,
        description="Seconds to wait for any response from a gateway before trying the next one.",
    )
    fr_inv_timer: float = Field(
        120.0,
        gt=0,
        description="Seconds an INVITE may ring (after a provisional response) before it is "
        "cancelled and the next gateway is tried.",
    )
    failover_codes: str = Field(
        "408,500,503",
        description="Comma-separated final response codes (300-699) from a gateway that make "
        "the proxy try the next gateway. May be empty. In TOML, a list of numbers is accepted.",
    )
    unknown_source: Literal["drop", "reject"] = Field(
        "drop",
        description="New request from an address not in the address table: drop (no reply) "
        "or reject (answer 403 Forbidden).",
    )
    max_forwards: int = Field(
        70,
        ge=1,
        le=255,
        description="Max-Forwards put on requests that lack one and upper limit for those that "
        "carry a larger value.",
    )
    tcp_idle_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds without traffic in either direction after which a TCP connection "
        "is closed — unless a live call needs it (the one its INVITE came on or its 2xx came "
        "back on, which a NAT alias may name), kept until its BYE is answered or for at most "
        "call_max_duration.",
    )
    max_message_size: int = Field(
        65535,
        ge=1024,
        description="Largest SIP message accepted, in bytes; a TCP peer sending more is "
        "disconnected and a larger UDP datagram is dropped.",
    )
    max_headers: int = Field(
        256,
        ge=32,
        le=65535,
        description="Most header fields in one SIP message; a message with more is refused "
        "(400 Too Many Headers to a request) after counting its lines, before they are parsed.",
    )
    tcp_max_connections: int = Field(
        4096,
        ge=1,
        description="TCP connections open at once, accepted and ours (per worker process); "
        "a connection accepted over it is closed at once, one of ours is not opened (the "
        "send fails). Keep it under the open-files limit (ulimit -n).",
    )
    tcp_max_per_source: int = Field(
        64,
        ge=1,
        description="TCP connections accepted from one IP address and open at once (per "
        "worker process); one more is closed at once. Our own connections do not count.",
    )
    tcp_message_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a SIP message may take to arrive over TCP once its first byte "
        "has; a message still incomplete then closes the connection (slow senders).",
    )
    tcp_max_output: int = Field(
        1 << 20,
        description="Bytes queued for one TCP peer that does not read (or a connection of ours "
        "still connecting); over it the connection is closed and the send fails. At least "
        "max_message_size.",
    )
    send_thread: bool = Field(
        True,
        description="UDP sends by a native thread (sendmmsg) beside the event loop when the "
        "compiled accelerator is built (pks.transport._sendq); false: the event loop sends.",
    )
    recv_batch: bool = Field(
        True,
        description="UDP receives read in batches (recvmmsg, up to 32 datagrams per wake-up) "
        "when the compiled accelerator is built; false: the event loop reads one at a time.",
    )
    default_socket: str | None = Field(
        None,
        description="Socket name (see listen) used to reach a gateway whose dispatcher attrs "
        "name no socketname. Unset or empty: the socket the request came in on.",
    )
    db_poll_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between two change checks of the routing tables (MySQL, SQLite, "
        "PostgreSQL without the triggers of pks db init) and between two liveness checks of "
        "the database; a change is applied within about this delay on every instance.",
    )
    snapshot_cache: str | None = Field(
        None,
        description="File where the rows of the last good load are kept (JSON, written "
        "after each load). When the database is unreachable at start-up, the proxy routes "
        "from this file instead of failing. Unset or empty: no cache.",
    )
    admin_listen: str = Field(
        "127.0.0.1:8091",
        description="IP:port of the admin HTTP API ([IPv6]:port for IPv6).",
    )
    admin_token: str | None = Field(
        None,
        description="Bearer token required by the admin API on every request, loopback "
        "included (Authorization: Bearer TOKEN; the pks command sends it). Unset or empty: "
        "no token, allowed only on a loopback admin_listen.",
    )
    admin_hosts: str | None = Field(
        None,
        description="Comma-separated host names or addresses (NAME[:PORT], IP[:PORT], "
        "[IPv6]:PORT; no port: any) that the admin API also accepts in the Host header, e.g. "
        "the name of a reverse proxy in front of it. Always accepted: the admin_listen "
        "address, and localhost, 127.0.0.1 and [::1] when it listens on loopback or on a "
        "wildcard address. Any other Host is refused (421), against DNS rebinding.",
    )
    log_level: str = Field(
        "INFO", description="Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL."
    )
    server_header: str = Field(
        "pks-sip-proxy",
        description="Server/User-Agent value on responses we generate; empty to omit it.",
    )
    ds_ping_interval: float = Field(
        10.0,
        ge=0,
        description="Seconds between two rounds of OPTIONS keepalives to the gateways "
        "(Kamailio's ds_ping_interval); 0 turns probing (and passive detection) off.",
    )
    ds_probing_threshold: int = Field(
        3, ge=1, description="Failed probes in a row that make a gateway inactive."
    )
    ds_inactive_threshold: int = Field(
        2, ge=1, description="Answered probes in a row that make an inactive gateway active."
    )
    ds_probing_mode: Literal["all", "inactive"] = Field(
        "all",
        description="Which gateways are probed: all (Kamailio ds_probing_mode 1) or only the "
        "inactive ones (mode 2).",
    )
    ds_ping_from: str = Field(
        "sip:pks@localhost",
        description="From URI of keepalives (a gateway's ping_from= attr overrides it).",
    )
    ds_ping_reply_codes: str = Field(
        "2xx,3xx,401,403,404,405,488",
        description="Probe replies that prove a gateway alive: codes and classes (2xx), "
        "comma-separated.",
    )
    dispatcher_alg: str = Field(
        "round-robin",
        description="Default distribution algorithm of dispatcher sets (name or Kamailio "
        "number: round-robin 4, hash-callid 0, hash-from 1, hash-ruri 3, random 6, "
        "priority 8, weighted 9, relative-weight 11); pks_set overrides it per set.",
    )
    dns_servers: str | None = Field(
        None,
        description="DNS servers for gateway names (ip[:port], comma-separated); unset: the "
        "system's (/etc/resolv.conf).",
    )
    call_max_duration: float = Field(
        14400.0,
        gt=0,
        description="Seconds after which an answered call is no longer counted against "
        "call limits if its BYE was never seen.",
    )
    dns_max_stale: float = Field(
        86400.0,
        ge=0,
        description="Seconds past its TTL a gateway name's last good answer is still used "
        "while every new lookup fails (RFC 8767 serve-stale); 0: never past the TTL.",
    )
    drain_timeout: float = Field(
        30.0,
        ge=0,
        le=86400,
        description="On SIGTERM: seconds at most to wait for the calls in flight (and, with "
        "drain_calls, the answered ones) to end while new calls get 503; then ringing "
        "branches are cancelled, their callers get 503, and the process exits 0.",
    )
    drain_calls: bool = Field(
        False,
        description="On SIGTERM, wait (up to drain_timeout) for answered calls to end too, "
        "not only for the calls still ringing.",
    )
    # --- the edge (docs/security.md) ---------------------------------------------------------
    secret: str | None = Field(
        None,
        min_length=16,
        description="Key signing our Record-Route (an in-dialog request is relayed only inside "
        "a dialog set up through us). Set the same value on every instance of a cluster; "
        "unset, the key is read from PKS_SECRET_FILE.",
    )
    secret_file: str = Field(
        "pks.secret",
        description="Without PKS_SECRET: file holding the key (created with a random one, mode "
        "0600, when absent), so that a restart keeps calls' in-dialog requests working.",
    )
    allowed_methods: str = Field(
        "INVITE",
        description="Comma-separated methods routed out of dialog (OPTIONS to the proxy itself "
        "is always answered; any other method gets 405). Inside dialogs every method passes.",
    )
    max_user_length: int = Field(
        64,
        ge=1,
        le=1024,
        description="Longest R-URI user part routed; a longer one gets 484.",
    )
    max_transactions: int = Field(
        20000,
        ge=10,
        description="Requests relayed and not answered yet (each holding its transactions) at "
        "most; over it a new request gets 503 with Retry-After (in-dialog requests up to a "
        "quarter more).",
    )
    # --- floods and fraud (docs/security.md#floods-and-fraud) -----------------------------------
    rate_limit: int = Field(
        0,
        ge=0,
        description="Requests per rate_window from one address not known as a peer above which "
        "it is banned for ban_time (its packets dropped before parsing); 0: no limit.",
    )
    rate_peer_limit: int = Field(
        0,
        ge=0,
        description="The same for a known peer (an address row's network or a gateway); 0: "
        "known peers are never banned automatically.",
    )
    rate_window: float = Field(
        2.0, gt=0, le=3600, description="Seconds over which requests from one address are counted."
    )
    ban_time: float = Field(
        300.0, gt=0, description="Seconds an address over its rate limit stays banned."
    )
    intl_prefixes: str = Field(
        "00,+",
        description="Comma-separated prefixes of international numbers (for max_intl_calls).",
    )
    local_prefixes: str = Field(
        "",
        description="Comma-separated prefixes of numbers that are not international although "
        "they start with an intl_prefixes one: the home country's, e.g. +33,0033.",
    )
    redis_url: str | None = Field(
        None,
        description="redis://HOST[:PORT][/DB]: calls per second and bans shared by every "
        "instance through Redis; unset, each process counts alone.",
    )

    gc_sweep_interval: float = Field(
        3600.0,
        ge=0,
        description="Seconds between two full sweeps of Python's cyclic garbage collector "
        "(they free reference cycles that died old; a stall of about 0.85 s per million live "
        "objects, logged); between sweeps each object is walked once, young (see pks.heap). "
        "0: never sweep.",
    )
    workers: str = Field(
        "1",
        description="Worker processes sharing the listening sockets (SO_REUSEPORT): a number "
        f"from 1 to {MAX_WORKERS}, or auto (one per core). 1 runs the proxy in one process. "
        "More than one needs fixed ports in listen (no port 0).",
    )
    # --- call records (docs/cdr.md) ----------------------------------------------------------
    cdr_sinks: str = Field(
        "",
        description="Where call records go, comma-separated: db (pks_cdr and Kamailio's acc), "
        "file (JSON lines, cdr_file), webhook (cdr_webhook_url). Empty: no records.",
    )
    cdr_file: str | None = Field(None, description="The JSON-lines file of the file sink.")
    cdr_webhook_url: str | None = Field(
        None, description="http(s) URL the webhook sink POSTs batches of records to (a JSON array)."
    )
    cdr_webhook_token: str | None = Field(
        None, description="Bearer token sent to the webhook (Authorization header)."
    )
    cdr_webhook_timeout: float = Field(
        10.0, gt=0, description="Seconds the webhook has to answer a batch."
    )
    cdr_db_url: str | None = Field(
        None, description="Database of the db sink (unset: db_url, the routing tables')."
    )
    cdr_spool: str = Field(
        "pks-cdr-spool",
        description="Directory where records wait for their sinks (with workers, one "
        "subdirectory per worker: w0, w1, ...).",
    )
    cdr_spool_max: int = Field(
        256 << 20,
        ge=1 << 20,
        description="Bytes the spool may hold (all sinks' backlog); records beyond are "
        "dropped and counted.",
    )
    cdr_queue_max: int = Field(
        100000,
        ge=100,
        description="Finished records held in memory for the writer thread; beyond, dropped "
        "and counted.",
    )
    cdr_batch: int = Field(500, ge=1, le=100000, description="Records per delivery at most.")
    cdr_retry_max: float = Field(
        60.0,
        gt=0,
        description="Longest wait between two tries of a failing sink (the wait doubles from 1 s).",
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, os.environ.get(CONFIG_FILE_VAR))) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get(CONFIG_FILE_VAR)
        if not path:
            return init_settings, env_settings
        return init_settings, env_settings, _toml_source(settings_cls, path)

    # --- validators ---

    @field_validator("workers", mode="before")
    @classmethod
    def _check_workers(cls, value: object, info: ValidationInfo) -> str:
        text = str(value).strip().lower()
        count = _worker_count(text)
        listen = info.data.get("listen")
        if count > 1 and listen is not None:
            zero = [str(s) for s in parse_listen(listen) if s.port == 0]
            if zero:
                raise ValueError(
                    f"{count} workers need fixed ports, but {', '.join(zero)} has port 0"
                )
        return text

    @field_validator("cdr_sinks", mode="before")
    @classmethod
    def _check_cdr_sinks(cls, value: object) -> str:
        if isinstance(value, list | tuple):
            value = ",".join(str(item) for item in value)
        return ",".join(_cdr_sinks(str(value)))

    @field_validator("cdr_file", "cdr_webhook_url", "cdr_webhook_token", "cdr_db_url")
    @classmethod
    def _cdr_empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("cdr_webhook_url")
    @classmethod
    def _check_cdr_webhook_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
        sinks = info.data.get("cdr_sinks") or ""
        if value is None and "webhook" in sinks.split(","):
            raise ValueError("the webhook sink (PKS_CDR_SINKS) needs a URL")
        return value

    @field_validator("cdr_file")
    @classmethod
    def _check_cdr_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        sinks = info.data.get("cdr_sinks") or ""
        if value is None and "file" in sinks.split(","):
            raise ValueError("the file sink (PKS_CDR_SINKS) needs a file name")
        if value is not None and not Path(value).expanduser().parent.is_dir():
            raise ValueError(f"directory {str(Path(value).parent)!r} does not exist")
        return value

    @field_validator("tcp_max_per_source")
    @classmethod
    def _check_max_per_source(cls, value: int, info: ValidationInfo) -> int:
        total = info.data.get("tcp_max_connections")
        if total is not None and value > total:
            raise ValueError(f"{value} is more than PKS_TCP_MAX_CONNECTIONS ({total})")
        return value

    @field_validator("tcp_max_output")
    @classmethod
    def _check_max_output(cls, value: int, info: ValidationInfo) -> int:
        # one message of the largest size must fit, or a slow moment of a good peer would
        # cut its connection
        size = info.data.get("max_message_size")
        if size is not None and value < size:
            raise ValueError(f"{value} is less than PKS_MAX_MESSAGE_SIZE ({size})")
        return value

    @field_validator("dns_servers")
    @classmethod
    def _check_dns_servers(cls, value: str | None) -> str | None:
        if value:
            parse_dns_servers(value)
        return value

    @field_validator("ds_ping_reply_codes")
    @classmethod
    def _check_reply_codes(cls, value: str) -> str:
        AliveCodes.parse(value)
        return value

    @field_validator("dispatcher_alg")
    @classmethod
    def _check_alg(cls, value: str) -> str:
        return parse_algorithm(value)

    @field_validator("listen", "failover_codes", "admin_hosts", mode="before")
    @classmethod
    def _join_list(cls, value: object) -> object:
        if isinstance(value, list | tuple):
            return ",".join(str(item) for item in value)
        return value

    @field_validator("allowed_methods")
    @classmethod
    def _check_methods(cls, value: str) -> str:
        _methods(value)
        return value

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("failover_codes")
    @classmethod
    def _check_failover_codes(cls, value: str) -> str:
        _codes(value)
        return value

    @field_validator(
        "default_socket", "admin_token", "admin_hosts", "snapshot_cache", "dns_servers"
    )
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("default_socket")
    @classmethod
    def _check_default_socket(cls, value: str | None, info: ValidationInfo) -> str | None:
        listen = info.data.get("listen")
        if value is None or listen is None:
            return value
        names = dict.fromkeys(sock.name for sock in parse_listen(listen))
        if value not in names:
            raise ValueError(f"no listen socket named {value!r} (names: {', '.join(names)})")
        return value

    @field_validator("snapshot_cache")
    @classmethod
    def _check_snapshot_cache(cls, value: str | None) -> str | None:
        if value is None:
            return value
        path = Path(value).expanduser()
        if path.is_dir():
            raise ValueError(f"{value!r} is a directory, expected a file path")
        if not path.parent.is_dir():
            raise ValueError(f"directory {str(path.parent)!r} does not exist")
        return str(path)

    @field_validator("admin_listen")
    @classmethod
    def _check_admin_listen(cls, value: str) -> str:
        _admin_address(value)
        return value

    @field_validator("admin_hosts")
    @classmethod
    def _check_admin_hosts(cls, value: str | None) -> str | None:
        if value:
            parse_admin_hosts(value)
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return level

    @field_validator("server_header")
    @classmethod
    def _check_server_header(cls, value: str) -> str:
        if any(ch in value for ch in "\r\n\0"):
            raise ValueError("must be a single line")
        return value.strip()

    # --- parsed views, computed once ---

    @cached_property
    def sockets(self) -> tuple[SocketInfo, ...]:
        """The listening sockets of ``listen``, in order."""
        return parse_listen(self.listen)

    @cached_property
    def failover_code_set(self) -> frozenset[int]:
        """The status codes of ``failover_codes``."""
        return _codes(self.failover_codes)

    @cached_property
    def probe_config(self) -> ProbeConfig:
        """The probing settings for the proxy core (probe timeout = ``fr_timer``)."""
        return ProbeConfig(
            interval=self.ds_ping_interval,
            timeout=self.fr_timer,
            mode=self.ds_probing_mode,
            ping_from=self.ds_ping_from,
            alive=AliveCodes.parse(self.ds_ping_reply_codes),
        )

    @cached_property
    def intl_prefix_tuple(self) -> tuple[str, ...]:
        """``intl_prefixes`` as a tuple (``str.startswith`` takes it)."""
        return _prefixes(self.intl_prefixes)

    @cached_property
    def local_prefix_tuple(self) -> tuple[str, ...]:
        return _prefixes(self.local_prefixes)

    @cached_property
    def method_set(self) -> frozenset[str]:
        """The methods of ``allowed_methods``."""
        return _methods(self.allowed_methods)

    @cached_property
    def worker_count(self) -> int:
        """How many worker processes ``workers`` asks for (1: no supervisor)."""
        return _worker_count(self.workers)

    @cached_property
    def dns_server_list(self) -> tuple[Address, ...]:
        """``dns_servers`` parsed; empty for the system's resolver configuration."""
        return parse_dns_servers(self.dns_servers) if self.dns_servers else ()

    @cached_property
    def cdr_sink_names(self) -> tuple[str, ...]:
        """The call record sinks of ``cdr_sinks`` (empty: records off)."""
        return _cdr_sinks(self.cdr_sinks)

    @cached_property
    def admin_address(self) -> Address:
        """``admin_listen`` as an `Address`."""
        return _admin_address(self.admin_listen)

    @cached_property
    def admin_host_list(self) -> tuple[tuple[str, int | None], ...]:
        """``admin_hosts`` parsed: (host, port or None for any)."""
        return parse_admin_hosts(self.admin_hosts) if self.admin_hosts else ()


_METHOD = re.compile(r"[A-Z]+")
_NEVER_NEW = frozenset({"ACK", "CANCEL", "BYE"})  # belong to a transaction or a dialog


def _methods(text: str) -> frozenset[str]:
    methods = frozenset(m.strip().upper() for m in text.split(",") if m.strip())
    bad = sorted(m for m in methods if not _METHOD.fullmatch(m) or m in _NEVER_NEW)
    if bad:
        raise ValueError(f"not methods that start a request out of dialog: {', '.join(bad)}")
    return methods


CDR_SINKS = ("db", "file", "webhook")


def _cdr_sinks(text: str) -> tuple[str, ...]:
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in CDR_SINKS]
    if bad:
        known = ", ".join(CDR_SINKS)
        raise ValueError(f"unknown sink {', '.join(map(repr, bad))} (known: {known})")
    return tuple(n for n in CDR_SINKS if n in names)


def _prefixes(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _worker_count(text: str) -> int:
    if text == "auto":
        return max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    if not text.isdigit() or not 1 <= int(text) <= MAX_WORKERS:
        raise ValueError(f"expected a number from 1 to {MAX_WORKERS} or auto, got {text!r}")
    return int(text)


def _codes(text: str) -> frozenset[int]:
    codes: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if not (item.isascii() and item.isdigit() and 300 <= int(item) <= 699):
            raise ValueError(f"{item!r} is not a final status code from 300 to 699")
        codes.add(int(item))
    return frozenset(codes)


def _admin_address(text: str) -> Address:
    try:
        host, port = _split_hostport(text.strip())
        return Address(_ip(host), _port(port, allow_zero=False))
    except ConfigError as exc:
        raise ValueError(f"expected IP:port, {exc}") from None


def _toml_source(settings_cls: type[BaseSettings], path: str) -> TomlConfigSettingsSource:
    if not Path(path).is_file():
        raise ConfigError(f"{CONFIG_FILE_VAR}: no such file: {path}")
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{CONFIG_FILE_VAR}: cannot read {path}: {exc}") from None


def _explain(exc: ValidationError, config_file: str | None) -> str:
    """One message for all errors, each naming the variable (or file key) that holds the value."""
    env_names = {name.upper() for name in os.environ}
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        variable = f"{ENV_PREFIX}{field.upper()}"
        if config_file and variable not in env_names:
            variable = f"{field!r} in {config_file}"
        if error["type"] == "extra_forbidden":
            problems.append(f"{variable}: unknown setting")
            continue
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, Exception):  # our own validators already quote the bad value
            problems.append(f"{variable}: {cause}")
        else:
            problems.append(f"{variable}: {error['msg']} (got {_shown(error.get('input'))})")
    return "; ".join(problems)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
