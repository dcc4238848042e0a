"""End-to-end harness: the proxy and SIPp peers as real processes on loopback.

Role: test support for tests/e2e (drives ``python -m pks run`` from outside, like an operator
would). Everything runs inside a private network namespace that holds nothing but a loopback
interface (`Netns`), which gives two guarantees:

- ports are free by construction (no other program binds in there), so they are handed out
  from a counter instead of probed, and parallel test sessions never collide;
- no packet leaves the machine, even when a faulty proxy sends to the private address that
  a NATed caller advertises in its Contact (192.168.1.10 in the NAT test).

A `Stage` is one test's world: one `ProxyProcess`, a few `Sipp` peers, each peer on its own
127.0.0.x address, all stopped at the end, their logs kept for the failure report.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pks import accel

SCENARIOS = Path(__file__).parent / "scenarios"
PROXY_IP = "127.0.0.10"
FIRST_PEER_HOST = 11  # peers get 127.0.0.11, .12, ... in each test
READY_LINE = "pks: ready"
CORES = {"pure": f"core {accel.PURE}", "compiled": f"core {accel.COMPILED}"}

# Row shapes, without the id column, in the column order of Kamailio 5.6's tables.
AddressRow = tuple[int, str, int, int, str | None]  # grp, ip_addr, mask, port, tag
DialplanRow = tuple[int, int, int, str, int, str, str, str]  # dpid, pr, match_op, match_exp,
#                                                 match_len, subst_exp, repl_exp, attrs
DispatcherRow = tuple[int, str, int, int, str, str]  # setid, destination, flags, priority,
#                                                       attrs, description

KAMAILIO_DDL = """
CREATE TABLE version (
    id INTEGER PRIMARY KEY, table_name VARCHAR(32) NOT NULL UNIQUE,
    table_version INTEGER DEFAULT 0 NOT NULL);
INSERT INTO version (table_name, table_version)
    VALUES ('version', 1), ('address', 6), ('dialplan', 2), ('dispatcher', 4);
CREATE TABLE address (
    id INTEGER PRIMARY KEY NOT NULL, grp INTEGER DEFAULT 1 NOT NULL,
    ip_addr VARCHAR(50) NOT NULL, mask INTEGER DEFAULT 32 NOT NULL,
    port SMALLINT DEFAULT 0 NOT NULL, tag VARCHAR(64));
CREATE TABLE dialplan (
    id INTEGER PRIMARY KEY NOT NULL, dpid INTEGER NOT NULL, pr INTEGER NOT NULL,
    match_op INTEGER NOT NULL, match_exp VARCHAR(64) NOT NULL, match_len INTEGER NOT NULL,
    subst_exp VARCHAR(64) NOT NULL, repl_exp VARCHAR(256) NOT NULL, attrs VARCHAR(64) NOT NULL);
CREATE TABLE dispatcher (
    id INTEGER PRIMARY KEY NOT NULL, setid INTEGER DEFAULT 0 NOT NULL,
    destination VARCHAR(192) DEFAULT '' NOT NULL, flags INTEGER DEFAULT 0 NOT NULL,
    priority INTEGER DEFAULT 0 NOT NULL, attrs VARCHAR(128) DEFAULT '' NOT NULL,
    description VARCHAR(64) DEFAULT '' NOT NULL);
"""


class HarnessError(RuntimeError):
    """A process of the harness could not be set up (not a verdict on the proxy)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A loopback transport address owned by one process of a test."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"

    def sip_uri(self, transport: str = "udp") -> str:
        """The SIP URI of this address, with ``;transport=`` unless UDP."""
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"sip:{self.ip}:{self.port}{suffix}"


# --- rows for the routing tables -------------------------------------------------------------


def customer(at: Endpoint, tag: str = "ipbx") -> AddressRow:
    """An ``address`` row: requests from exactly ``at`` come from a customer's IP-PBX (grp 1)."""
    return (1, at.ip, 32, at.port, tag)


def carrier(at: Endpoint, tag: str = "carrier") -> AddressRow:
    """An ``address`` row: requests from exactly ``at`` come from a carrier (grp 2)."""
    return (2, at.ip, 32, at.port, tag)


def regex_rule(dpid: int, match_exp: str, setid: int, *, pr: int = 1) -> DialplanRow:
    """A dialplan rule: R-URI users matching ``match_exp`` (regex search) go to ``setid``."""
    return (dpid, pr, 1, match_exp, 0, "", "", str(setid))


def gateway(
    setid: int, at: Endpoint, *, transport: str = "udp", priority: int = 0
) -> DispatcherRow:
    """A dispatcher destination: the gateway listening at ``at``."""
    return (setid, at.sip_uri(transport), 0, priority, "", f"gw {at}")


def write_database(
    path: Path,
    address: Iterable[AddressRow],
    dialplan: Iterable[DialplanRow],
    dispatcher: Iterable[DispatcherRow],
) -> None:
    """Create a Kamailio 5.6 SQLite database holding exactly these rows (ids in list order)."""
    with sqlite3.connect(path) as db:
        db.executescript(KAMAILIO_DDL)
        db.executemany(
            "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (?, ?, ?, ?, ?)", address
        )
        db.executemany(
            "INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_len, subst_exp,"
            " repl_exp, attrs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            dialplan,
        )
        db.executemany(
            "INSERT INTO dispatcher (setid, destination, flags, priority, attrs, description)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            dispatcher,
        )
    db.close()


# --- the private network ---------------------------------------------------------------------


class Netns:
    """A network namespace with only loopback, alive while its holder process runs.

    The holder is ``unshare --net`` running ``cat`` on a pipe we own: when we close the pipe
    (or die), it exits. Processes join with ``nsenter --net``, which execs the program
    itself, so a ``Popen``'s pid is the program's pid and signals reach it directly.
    """

    def __init__(self) -> None:
        script = "ip link set lo up && echo ready && exec cat"
        try:
            self._holder = subprocess.Popen(
                ["unshare", "--net", "--", "sh", "-c", script],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        except OSError as exc:
            raise HarnessError(f"cannot run unshare: {exc}") from exc
        assert self._holder.stdout is not None
        if self._holder.stdout.readline().strip() != "ready":
            _, err = self._holder.communicate(timeout=5)
            raise HarnessError(f"cannot create a network namespace (needs root): {err.strip()}")
        self.prefix = ["nsenter", f"--net=/proc/{self._holder.pid}/ns/net", "--"]

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the namespace."""
        return subprocess.Popen([*self.prefix, *argv], **kwargs)

    def close(self) -> None:
        self._holder.communicate(timeout=5)  # closes the holder's stdin: it exits


class Ports:
    """Hands out ports; inside the private namespace every port not yet handed out is free.

    They start below Linux's ephemeral range (32768-60999), which the kernel keeps for the
    source ports of outgoing TCP connections.
    """

    def __init__(self, first: int = 20000) -> None:
        self._next = itertools.count(first)

    def take(self) -> int:
        return next(self._next)


# --- processes -------------------------------------------------------------------------------

T = TypeVar("T")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition()`` every 20 ms until it is true; HarnessError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def in_background(target: Callable[[], T]) -> tuple[threading.Thread, list[T]]:
    """Run ``target`` in a daemon thread (e.g. a SIPp caller holding calls while the test
    acts on the proxy): the thread, and the list its result is appended to when it ends."""
    results: list[T] = []
    thread = threading.Thread(target=lambda: results.append(target()), daemon=True)
    thread.start()
    return thread, results


def _stop(proc: subprocess.Popen[bytes], signals: Sequence[tuple[int, float]]) -> None:
    """Send each (signal, grace seconds) in turn until the process has exited; then SIGKILL."""
    for signum, grace in signals:
        if proc.poll() is not None:
            return
        proc.send_signal(signum)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=5)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


class ProxyProcess:
    """``python -m pks run`` on its own database, configured through ``PKS_*`` variables.

    ``PKS_TEST_WORKERS`` (default 1) in the test run's environment becomes the proxy's
    ``PKS_WORKERS``: ``PKS_TEST_WORKERS=2 pytest tests/e2e`` runs every test in worker mode.
    """

    def __init__(
        self,
        netns: Netns,
        workdir: Path,
        listen: Sequence[tuple[str, Endpoint]],
        admin: Endpoint,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.listen = dict(listen)
        self.log_path = workdir / "proxy.log"
        self.db_path = workdir / "pks.db"
        self._netns = netns
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
        self._env = {
            **inherited,
            "PKS_LISTEN": ",".join(f"{proto}:{at}" for proto, at in listen),
            "PKS_DB_URL": f"sqlite:///{self.db_path}",
            "PKS_FR_TIMER": "1.0",
            "PKS_FR_INV_TIMER": "10.0",
            "PKS_UNKNOWN_SOURCE": "drop",
            "PKS_DS_PING_INTERVAL": "0",  # SIPp UAS scenarios do not answer OPTIONS
            "PKS_ADMIN_LISTEN": str(admin),
            "PKS_LOG_LEVEL": "DEBUG",
            "PKS_WORKERS": os.environ.get("PKS_TEST_WORKERS", "1"),  # the suite in worker mode
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self._proc: subprocess.Popen[bytes] | None = None

    def at(self, transport: str = "udp") -> Endpoint:
        """Where the proxy listens for ``transport``."""
        return self.listen[transport]

    def start(self, timeout: float = 30.0) -> None:
        """Start the proxy and wait for its ``pks: ready`` line (all sockets bound)."""
        with self.log_path.open("wb") as log:
            self._proc = self._netns.popen(
                [sys.executable, "-m", "pks", "run"],
                cwd=self.workdir,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        proc = self._proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise HarnessError(f"the proxy exited with status {proc.returncode} before ready")
            return READY_LINE in self.log()

        wait_for(ready, timeout, f"{READY_LINE!r} in {self.log_path}")
        # scripts/test runs the suite on the pure-Python core, then on the compiled one
        core = os.environ.get("PKS_TEST_CORE")
        want = None if core is None else CORES[core]
        if want is not None and want not in self.log():
            raise HarnessError(f"the proxy does not run the {want!r}: {self.log_path}")

    def stop(self) -> None:
        if self._proc is not None:
            _stop(self._proc, [(signal.SIGTERM, 5.0)])

    @property
    def pid(self) -> int:
        """The pid of ``pks run`` (the supervisor with ``PKS_WORKERS`` > 1)."""
        assert self._proc is not None
        return self._proc.pid

    def signal(self, signum: int) -> None:
        """Send ``signum`` to ``pks run`` (SIGTERM: the graceful stop, docs/operations.md)."""
        assert self._proc is not None
        self._proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for ``pks run`` to exit; its exit status (HarnessError after ``timeout`` s)."""
        assert self._proc is not None
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarnessError(f"the proxy did not exit within {timeout} s") from None

    def log(self) -> str:
        return _read(self.log_path)


# RFC 3261 §7.3.3 compact header names
_COMPACT = {"via": "v", "from": "f", "to": "t", "call-id": "i", "contact": "m"}


@dataclass(frozen=True, slots=True)
class SipMessage:
    """One message from a SIPp ``-trace_msg`` log."""

    received: bool
    text: str

    @property
    def start_line(self) -> str:
        return self.text.split("\n", 1)[0]

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        first = self.start_line.split(" ", 1)[0]
        return None if first.startswith("SIP/") else first

    def headers(self, name: str) -> list[str]:
        """Values of every header line called ``name`` or its compact form, in order."""
        names = {name.lower(), _COMPACT.get(name.lower(), name.lower())}
        head = self.text.split("\n\n", 1)[0]
        fields = (line.partition(":") for line in head.split("\n")[1:])
        return [value.strip() for field, _, value in fields if field.strip().lower() in names]

    def vias(self) -> list[str]:
        """Every Via value, top first, comma-separated ones split."""
        return [via.strip() for line in self.headers("Via") for via in line.split(",")]

    def via_hosts(self) -> list[str]:
        """The sent-by host of every Via, top first: the path a request took, newest hop first."""
        return [re.split(r"[\s:;]+", via.split(None, 1)[1])[0] for via in self.vias()]


_TRACE_SEPARATOR = re.compile(r"^-{20,} .*\n(?:UDP|TCP) message (received|sent).*\n\n", re.M)


def parse_trace(text: str) -> list[SipMessage]:
    """Split a SIPp ``-trace_msg`` log into messages (line ends normalised to LF)."""
    parts = _TRACE_SEPARATOR.split(text.replace("\r\n", "\n"))
    return [
        SipMessage(received=direction == "received", text=body.strip("\n"))
        for direction, body in zip(parts[1::2], parts[2::2], strict=True)
    ]


@dataclass(frozen=True, slots=True)
class SippResult:
    """How a SIPp run ended: exit status, call counters, unexpected events, message trace."""

    name: str
    returncode: int | None
    successful: int
    failed: int
    errors: str
    messages: tuple[SipMessage, ...]

    @property
    def counts(self) -> tuple[int, int]:
        """(successful, failed) calls."""
        return (self.successful, self.failed)

    def requests(self, method: str) -> list[SipMessage]:
        """Requests of ``method`` this peer received (retransmissions included)."""
        return [m for m in self.messages if m.received and m.method == method]

    def __str__(self) -> str:
        errors = f"\n{self.errors.strip()}" if self.errors.strip() else ""
        return (
            f"sipp {self.name}: exit {self.returncode}, {self.successful} successful,"
            f" {self.failed} failed call(s){errors}"
        )


class Sipp:
    """One SIPp process: a UAC or UAS bound to its own endpoint, with its trace files."""

    def __init__(
        self,
        netns: Netns,
        workdir: Path,
        name: str,
        scenario: str,
        local: Endpoint,
        control_port: int,
        transport: str = "udp",
    ) -> None:
        self.name = name
        self.local = local
        self._netns = netns
        self._workdir = workdir
        self._files = {kind: workdir / f"{name}.{kind}" for kind in ("msg", "err", "csv", "stderr")}
        self._args = [
            "-sf", str(SCENARIOS / scenario),
            "-i", local.ip, "-p", str(local.port), "-bind_local",
            "-t", {"udp": "u1", "tcp": "t1"}[transport],
            "-cp", str(control_port),
            "-nostdin",
            "-trace_msg", "-message_file", str(self._files["msg"]),
            "-trace_err", "-error_file", str(self._files["err"]),
            "-trace_stat", "-stf", str(self._files["csv"]),
        ]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, remote: Endpoint | None, options: Sequence[str]) -> subprocess.Popen[bytes]:
        target = [str(remote)] if remote else []
        with self._files["stderr"].open("wb") as stderr:
            self._proc = self._netns.popen(
                ["sipp", *target, *self._args, *options],
                cwd=self._workdir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        return self._proc

    def start(self, options: Sequence[str]) -> None:
        """Start a server in the background; return once it has its sockets.

        SIPp writes the first row of its statistics file after opening its sockets.
        """
        proc = self._spawn(None, options)

        def ready() -> bool:
            if proc.poll() is not None:
                raise HarnessError(f"{self.name} exited early:\n{_read(self._files['stderr'])}")
            return len(_read(self._files["csv"]).splitlines()) >= 2

        wait_for(ready, 10.0, f"sipp {self.name} to start")

    def run(self, remote: Endpoint, options: Sequence[str], timeout: float) -> SippResult:
        """Run a client to its end (``-m`` calls done), killing it after ``timeout`` seconds."""
        proc = self._spawn(remote, options)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _stop(proc, [])
        return self.result()

    def stop(self) -> SippResult:
        """End a UAS: a soft exit (SIGUSR1), then abort its open calls (SIGUSR1 again)."""
        if self._proc is not None:
            _stop(self._proc, [(signal.SIGUSR1, 1.0), (signal.SIGUSR1, 1.0)])
        return self.result()

    def result(self) -> SippResult:
        stats = _last_stats_row(self._files["csv"])
        return SippResult(
            name=self.name,
            returncode=self._proc.returncode if self._proc else None,
            successful=int(stats.get("SuccessfulCall(C)", 0)),
            failed=int(stats.get("FailedCall(C)", 0)),
            # SIPp copies to stderr what it writes in its error file; stderr alone has the
            # errors met before that file opens (a bad scenario, a port in use)
            errors=_read(self._files["err"]) or _read(self._files["stderr"]),
            messages=tuple(parse_trace(_read(self._files["msg"]))),
        )

    def report(self) -> str:
        """Everything about this peer, for a failure report."""
        return f"{self.result()}\n--- message trace ---\n{_read(self._files['msg'])}"


def _last_stats_row(path: Path) -> dict[str, str]:
    rows = list(csv.reader(_read(path).splitlines(), delimiter=";"))
    return dict(zip(rows[0], rows[-1], strict=False)) if len(rows) >= 2 else {}


# --- one test's world ------------------------------------------------------------------------


class Stage:
    """The proxy and the SIPp peers of one test; ``close()`` stops them all."""

    def __init__(self, netns: Netns, ports: Ports, workdir: Path) -> None:
        self.netns = netns
        self.ports = ports
        self.workdir = workdir
        self.proxy: ProxyProcess | None = None
        self.peers: list[Sipp] = []
        self._hosts = itertools.count(FIRST_PEER_HOST)

    def endpoint(self) -> Endpoint:
        """A fresh address for one peer (or for a gateway where nothing listens)."""
        return Endpoint(f"127.0.0.{next(self._hosts)}", self.ports.take())

    def start_proxy(
        self,
        *,
        address: Iterable[AddressRow] = (),
        dialplan: Iterable[DialplanRow] = (),
        dispatcher: Iterable[DispatcherRow] = (),
        transports: Sequence[str] = ("udp",),
        env: dict[str, str] | None = None,
        more_sockets: Sequence[str] = (),
        sql: str = "",
    ) -> ProxyProcess:
        """Write the routing tables, start the proxy on all ``transports`` (one port), wait.

        ``more_sockets`` are extra ``PKS_LISTEN`` entries (the first socket is named public);
        ``sql`` runs on the database after the tables are written (pks's own tables).
        """
        at = Endpoint(PROXY_IP, self.ports.take())
        admin = Endpoint("127.0.0.1", self.ports.take())
        self.proxy = ProxyProcess(
            self.netns, self.workdir, [(t, at) for t in transports], admin, env
        )
        if more_sockets:
            listen = self.proxy._env["PKS_LISTEN"]
            self.proxy._env["PKS_LISTEN"] = ",".join([f"{listen};name=public", *more_sockets])
        write_database(self.proxy.db_path, address, dialplan, dispatcher)
        if sql:
            with sqlite3.connect(self.proxy.db_path) as db:
                db.executescript(sql)
            db.close()
        self.proxy.start()
        return self.proxy

    def _sipp(self, scenario: str, at: Endpoint, transport: str) -> Sipp:
        name = f"{len(self.peers) + 1}-{Path(scenario).stem}"
        sipp = Sipp(self.netns, self.workdir, name, scenario, at, self.ports.take(), transport)
        self.peers.append(sipp)
        return sipp

    def uas(
        self,
        scenario: str,
        at: Endpoint,
        *,
        transport: str = "udp",
        keys: dict[str, str] | None = None,
        pause_ms: int = 0,
        options: Sequence[str] = (),
    ) -> Sipp:
        """Start a SIPp server (callee or gateway) in the background at ``at``."""
        sipp = self._sipp(scenario, at, transport)
        sipp.start(options=[*_keys(keys), "-d", str(pause_ms), "-timeout", "60s", *options])
        return sipp

    def uac(
        self,
        scenario: str,
        at: Endpoint,
        to: Endpoint,
        *,
        service: str = "service",
        calls: int = 1,
        rate: int = 10,
        limit: int = 1,
        transport: str = "udp",
        keys: dict[str, str] | None = None,
        pause_ms: int = 0,
        timeout: int = 15,
        options: Sequence[str] = (),
    ) -> SippResult:
        """Place ``calls`` calls from ``at`` to ``to``, at most ``limit`` at once; wait for the end.

        SIPp exits by itself after ``calls`` calls, or fails after ``timeout`` seconds.
        """
        sipp = self._sipp(scenario, at, transport)
        argv = [
            "-s", service, "-m", str(calls), "-r", str(rate), "-l", str(limit),
            "-d", str(pause_ms), "-timeout", f"{timeout}s", "-timeout_error", *_keys(keys),
            *options,
        ]  # fmt: skip
        return sipp.run(to, argv, timeout + 5)

    def close(self) -> None:
        for sipp in self.peers:
            sipp.stop()
        if self.proxy is not None:
            self.proxy.stop()

    def reports(self) -> Iterator[tuple[str, str]]:
        """(title, text) sections describing every process, for a failure report."""
        if self.proxy is not None:
            yield "proxy log", self.proxy.log()
        for sipp in self.peers:
            yield f"sipp {sipp.name} at {sipp.local}", sipp.report()


def _keys(keys: dict[str, str] | None) -> list[str]:
    return [arg for key, value in (keys or {}).items() for arg in ("-key", key, value)]
