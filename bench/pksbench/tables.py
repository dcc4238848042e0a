"""The benchmark's routing tables: one SQLite file that pks and Kamailio both read.

The schema is Kamailio 5.6's own (Debian ``kamailio`` package, ``db_sqlite/*-create.sql``), so
the very same file feeds ``permissions``/``dialplan``/``dispatcher`` and ``pks``. Rows come
from generators of plain tuples in column order; the pks micro-benchmark turns the same
tuples into ``pks.route.rows`` values, so both proxies see identical data.

Topology (every element on its own loopback address, nothing leaves 127.0.0.0/8):
the caller (a customer's IP-PBX, ``address`` grp 1) dials an off-net number that dialplan
id 2 sends to dispatcher set 20, the two callee gateways (carriers, grp 2), round robin.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

SCHEMA_DIR = Path("/usr/share/kamailio/db_sqlite")
SCHEMA_FILES = ("standard", "permissions", "dialplan", "dispatcher")

UAC_IP = "127.0.1.1"
GATEWAY_IPS = ("127.0.1.2", "127.0.1.3")
STEADY_IP = "127.0.1.4"  # scenario 4: the customer placing calls at a steady rate
FLOODER_IP = "127.0.1.5"  # scenario 4: the customer flooding beyond its max_cps
PKS_IP = "127.0.1.10"
KAMAILIO_IP = "127.0.1.11"
SIP_PORT = 5060

CUSTOMER_SET = 10
CARRIER_SET = 20
CALLED = "+33612345678"
STEADY_TAG = "cust-steady"
FLOODER_TAG = "cust-flood"

AddressTuple = tuple[int, int, str, int, int, str | None]
DialplanTuple = tuple[int, int, int, int, str, int, str, str, str]
DispatcherTuple = tuple[int, int, str, int, int, str, str]


@dataclass(frozen=True, slots=True)
class Tables:
    """Rows of the three tables, in id order (generators may be consumed only once)."""

    address: Iterable[AddressTuple]
    dialplan: Iterable[DialplanTuple]
    dispatcher: Iterable[DispatcherTuple]


def _bench_address() -> list[AddressTuple]:
    rows: list[AddressTuple] = [(1, 1, UAC_IP, 32, 0, "pbx-bench")]
    rows += [(2 + i, 2, ip, 32, 0, f"carrier-{i + 1}") for i, ip in enumerate(GATEWAY_IPS)]
    return rows


def _dispatcher(gateways: Sequence[str] = GATEWAY_IPS) -> list[DispatcherTuple]:
    rows: list[DispatcherTuple] = [
        (1, CUSTOMER_SET, f"sip:{UAC_IP}:{SIP_PORT}", 0, 0, "", "customer PBX")
    ]
    rows += [
        (2 + i, CARRIER_SET, f"sip:{ip}:{SIP_PORT}", 0, 0, "", f"carrier gateway {i + 1}")
        for i, ip in enumerate(gateways)
    ]
    return rows


def bench_tables(gateways: Sequence[str] = GATEWAY_IPS) -> Tables:
    """Scenario 1: a small, realistic interconnect (100 DIDs, a few carrier prefixes).

    The customer's call to ``CALLED`` misses dpid 1 (not one of our DIDs) and matches the
    sixth rule of dpid 2, so both proxies do real dialplan work on every call; dispatcher set
    20 holds ``gateways`` (scenario 1 runs one callee: ``pksbench.measure.GATEWAYS``).
    """
    dialplan: list[DialplanTuple] = []
    rid = 0
    for i in range(100):  # DIDs ("SDA") of the customer, exact strings
        rid += 1
        dialplan.append((rid, 1, i, 0, f"+3320202{i:05d}", 0, "", "", str(CUSTOMER_SET)))
    rid += 1
    dialplan.append((rid, 1, 100, 1, r"^\+3320203[0-9]{4}$", 0, "", "", str(CUSTOMER_SET)))
    prefixes = (r"^\+1[2-9]", r"^\+44[1-9]", r"^\+49[1-9]", r"^\+32[1-9]", r"^\+41[1-9]")
    for pr, pattern in enumerate(prefixes):
        rid += 1
        dialplan.append((rid, 2, pr, 1, pattern, 0, "", "", str(CARRIER_SET)))
    rid += 1
    dialplan.append((rid, 2, 10, 1, r"^\+33[1-9][0-9]{8}$", 0, "", "", str(CARRIER_SET)))
    rid += 1
    dialplan.append((rid, 2, 20, 2, "+3[0-9]*", 0, "", "", str(CARRIER_SET)))
    return Tables(_bench_address(), dialplan, _dispatcher(gateways))


PeerTuple = tuple[int, str, str, str, int, int | None, str]


def peer_flood_tables(gateways: Sequence[str]) -> tuple[Tables, list[PeerTuple]]:
    """Scenario 4: scenario 1's tables plus two customers (``address`` grp 1, one /32 each)
    and their ``pks_peer`` rows: the flooder with ``max_cps``, the steady one without.

    Both dial ``CALLED`` as scenario 1's caller does; each owns a dispatcher set (calls *to*
    the customer, unused here: ``pks_peer.setid`` is unique and required).
    """
    base = bench_tables(gateways)
    address = list(base.address)
    dispatcher = list(base.dispatcher)
    peers: list[PeerTuple] = []
    for n, (ip, tag, name) in enumerate(
        ((STEADY_IP, STEADY_TAG, "steady"), (FLOODER_IP, FLOODER_TAG, "flooder"))
    ):
        setid = CUSTOMER_SET + 1 + n
        address.append((len(address) + 1, 1, ip, 32, 0, tag))
        dispatcher.append(
            (len(dispatcher) + 1, setid, f"sip:{ip}:{SIP_PORT}", 0, 0, "", f"customer {name}")
        )
        peers.append((n + 1, "customer", name, tag, setid, None, f"scenario 4 {name}"))
    return Tables(address, base.dialplan, dispatcher), peers


def add_peers(path: Path, peers: Sequence[PeerTuple], max_cps: dict[str, int]) -> bool:
    """Create pks's ``pks_peer`` table (the project's own schema, ``pks.db.own``) in ``path``
    and fill it, ``max_cps`` per tag. False when pks is not importable (Kamailio reads none
    of it: only pks is measured with it)."""
    try:
        from sqlalchemy import create_engine

        from pks.db.own import pks_peer
    except ImportError:
        return False
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            pks_peer.create(conn, checkfirst=True)
            conn.execute(
                pks_peer.insert(),
                [
                    {"id": i, "kind": kind, "name": name, "tag": tag, "setid": setid,
                     "max_cps": max_cps.get(tag, cps), "description": about}
                    for i, kind, name, tag, setid, cps, about in peers
                ],
            )  # fmt: skip
    finally:
        engine.dispose()
    return True


@dataclass(frozen=True, slots=True)
class Sized:
    """Scenario 2 table sizes: dialplan rules (half exact DIDs, half prefixes) and addresses."""

    dialplan: int
    address: int

    @property
    def label(self) -> str:
        return f"dialplan {_count(self.dialplan)}, address {_count(self.address)}"

    @property
    def exact(self) -> int:
        return self.dialplan // 2

    @property
    def prefixes(self) -> int:
        return self.dialplan - self.dialplan // 2

    @property
    def subnets(self) -> int:
        return min(256, self.address // 100)

    @property
    def hosts(self) -> int:
        return self.address - self.subnets


def _count(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def did(i: int) -> str:
    """The i-th exact DID of the sized tables (dpid 1, ``match_op`` 0)."""
    return f"+33{200_000_000 + i}"


def prefix(j: int) -> str:
    """The i-th carrier prefix (digits after ``+1``) of the sized tables (dpid 2)."""
    return f"{200_000 + j:06d}"


def host(i: int) -> str:
    """The i-th customer host of the sized ``address`` table."""
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


def _sized_dialplan(size: Sized) -> Iterator[DialplanTuple]:
    for i in range(size.exact):
        yield (i + 1, 1, i, 0, did(i), 0, "", "", str(CUSTOMER_SET))
    for j in range(size.prefixes):
        rid = size.exact + j + 1
        yield (rid, 2, j, 1, rf"^\+1{prefix(j)}", 0, "", "", str(CARRIER_SET))


def _sized_address(size: Sized) -> Iterator[AddressTuple]:
    yield from _bench_address()
    base = len(_bench_address())
    for k in range(size.subnets):  # carrier subnets, well under Kamailio's max_subnets (512)
        yield (base + k + 1, 2, f"172.16.{k}.0", 24, 0, f"carrier-net-{k}")
    for i in range(size.hosts):
        yield (base + size.subnets + i + 1, 1, host(i), 32, 5060, f"pbx-{i}")


def sized_tables(size: Sized) -> Tables:
    """Scenario 2: DIDs ``+332000…`` exact in dpid 1, NANP-style ``^\\+1NPANXX`` in dpid 2.

    The address table keeps the three benchmark hosts first (so Kamailio's exact-address
    bucket holds them behind every later row) and adds customer /32 hosts and carrier /24s.
    """
    return Tables(_sized_address(size), _sized_dialplan(size), _dispatcher())


def called_numbers(size: Sized, count: int, seed: int = 5060) -> list[str]:
    """Numbers that hit prefix rules spread uniformly over dpid 2 (after missing dpid 1)."""
    rng = random.Random(seed)
    return [
        f"+1{prefix(rng.randrange(size.prefixes))}{rng.randrange(10_000):04d}" for _ in range(count)
    ]


def write_numbers(
    path: Path, numbers: Sequence[str], destinations: Sequence[tuple[str, int]]
) -> Path:
    """A SIPp ``-inf`` file read in sequence: ``number;ip;port;`` per call.

    Numbers and destinations are taken in turn (one of the two lists usually has one item).
    """
    count = max(len(numbers), len(destinations))
    lines = (
        f"{numbers[i % len(numbers)]};{destinations[i % len(destinations)][0]};"
        f"{destinations[i % len(destinations)][1]};\n"
        for i in range(count)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("SEQUENTIAL\n" + "".join(lines))
    return path


def create_db(path: Path, tables: Tables) -> Path:
    """Create ``path`` from Kamailio's SQLite schema and fill it with ``tables``."""
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    try:
        for name in SCHEMA_FILES:
            con.executescript((SCHEMA_DIR / f"{name}-create.sql").read_text())
        con.executemany(
            "INSERT INTO address (id, grp, ip_addr, mask, port, tag) VALUES (?,?,?,?,?,?)",
            tables.address,
        )
        con.executemany(
            "INSERT INTO dialplan (id, dpid, pr, match_op, match_exp, match_len, subst_exp,"
            " repl_exp, attrs) VALUES (?,?,?,?,?,?,?,?,?)",
            tables.dialplan,
        )
        con.executemany(
            "INSERT INTO dispatcher (id, setid, destination, flags, priority, attrs,"
            " description) VALUES (?,?,?,?,?,?,?)",
            tables.dispatcher,
        )
        con.commit()
    finally:
        con.close()
    return path
