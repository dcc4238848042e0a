"""What the caller sends to: pks, Kamailio, or the callee itself (the machine's ceiling).

A target is started on a database, answers ``ready()`` once it routes calls, exposes its
process tree for CPU and memory readings, and is stopped at the end of its phase. Readiness
is checked from the outside: a SIP OPTIONS with ``Max-Forwards: 0`` sent from the caller's
address gets an answer (483, or 200) once a worker is up — after the tables are loaded.
pks also counts as ready when it logs ``pks: ready``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from pksbench import procs
from pksbench.tables import GATEWAY_IPS, KAMAILIO_IP, PKS_IP, SIP_PORT, UAC_IP

KAMAILIO_CFG = Path(__file__).resolve().parent.parent / "kamailio" / "kamailio.cfg"
REPO = Path(__file__).resolve().parent.parent.parent


def options_probe(ip: str, port: int, timeout: float = 0.1) -> bool:
    """Whether a SIP element on ``ip:port`` answers an OPTIONS sent from the caller's host."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((UAC_IP, 0))
        local = sock.getsockname()[1]
        branch = "z9hG4bK-probe-" + secrets.token_hex(6)
        msg = (
            f"OPTIONS sip:probe@{ip}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {UAC_IP}:{local};branch={branch};rport\r\n"
            "Max-Forwards: 0\r\n"
            f"From: <sip:probe@{UAC_IP}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:probe@{ip}>\r\n"
            f"Call-ID: {secrets.token_hex(8)}@{UAC_IP}\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "User-Agent: pks-bench-probe\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        sock.settimeout(timeout)
        try:
            sock.sendto(msg, (ip, port))
            data = sock.recv(65535)
        except OSError:
            return False
        return data.startswith(b"SIP/2.0 ")


@dataclass
class Target(ABC):
    """A SIP element at ``ip:port``; ``proc`` stays None for the direct ceiling."""

    name: str
    label: str
    ip: str
    port: int = SIP_PORT
    proc: procs.Proc | None = None
    start_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return (self.ip, self.port)

    @property
    def is_proxy(self) -> bool:
        return True

    @property
    def gateways(self) -> tuple[str, ...]:
        """The callees this target's calls reach."""
        return GATEWAY_IPS

    @property
    def destinations(self) -> tuple[tuple[str, int], ...]:
        """Where the caller sends each call, in turn."""
        return (self.address,)

    @abstractmethod
    def launch(self, db: Path, workdir: Path, extra: tuple[str, ...]) -> procs.Proc | None:
        """Start the element's process (None: nothing to start)."""

    def start(self, db: Path, workdir: Path, timeout: float, extra: tuple[str, ...] = ()) -> None:
        """Start on ``db`` and wait until it answers; raises RuntimeError with its log tail."""
        t0 = time.monotonic()
        self.proc = self.launch(db, workdir, extra)
        if self.proc is None:
            self.start_seconds = 0.0
            return
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError(
                    f"{self.label} exited with {self.proc.popen.returncode}:\n{self.proc.tail()}"
                )
            if self.logged_ready() or options_probe(self.ip, self.port):
                self.start_seconds = time.monotonic() - t0
                return
            time.sleep(0.05)
        tail = self.proc.tail()
        self.stop()
        raise RuntimeError(f"{self.label} not ready after {timeout:.0f}s:\n{tail}")

    def logged_ready(self) -> bool:
        return False

    def pids(self) -> list[int]:
        return procs.tree(self.proc.pid) if self.proc is not None else []

    def stop(self) -> None:
        if self.proc is not None:
            procs.stop(self.proc)
            self.proc = None


class Direct(Target):
    """SIPp caller straight to the SIPp callees, in turn: what this machine's SIPp can do."""

    def __init__(self) -> None:
        super().__init__("direct", "SIPp direct", GATEWAY_IPS[0])

    @property
    def is_proxy(self) -> bool:
        return False

    @property
    def destinations(self) -> tuple[tuple[str, int], ...]:
        return tuple((ip, SIP_PORT) for ip in GATEWAY_IPS)

    def launch(self, db: Path, workdir: Path, extra: tuple[str, ...]) -> None:
        return None


class Kamailio(Target):
    """Kamailio 5.6 with ``bench/kamailio/kamailio.cfg``, ``children`` UDP workers."""

    def __init__(self, children: int, shm_mb: int = 1024, pkg_mb: int = 16) -> None:
        label = f"Kamailio 5.6 ({children} worker{'s' if children != 1 else ''})"
        super().__init__(f"kamailio-w{children}", label, KAMAILIO_IP)
        self.children = children
        self.shm_mb = shm_mb  # shared pool: transactions, routing tables
        self.pkg_mb = pkg_mb  # per-process pool: a table load holds the query result here

    def launch(self, db: Path, workdir: Path, extra: tuple[str, ...]) -> procs.Proc:
        binary = shutil.which("kamailio") or "/usr/sbin/kamailio"
        rundir = workdir / "kamailio-run"
        rundir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "-f",
            str(KAMAILIO_CFG),
            "-DD",
            "-E",
            "-l",
            f"udp:{self.ip}:{self.port}",
            "-n",
            str(self.children),
            "-Y",
            str(rundir),
            "-m",
            str(self.shm_mb),
            "-M",
            str(self.pkg_mb),
            "-A",
            f'DBURL="sqlite://{db}"',
        ]
        for define in extra:
            argv += ["-A", define]
        return procs.start("kamailio", argv, workdir)


class Pks(Target):
    """``python -m pks run`` from the benchmark's virtualenv (the project installed editable)."""

    def __init__(
        self,
        admin_port: int,
        workers: int = 1,
        accel: Path | None = None,
        cdr: str = "",
        webhook_url: str | None = None,
        settings: tuple[str, ...] = (),
    ) -> None:
        """``accel``: a compiled copy of the package (``python -m pks.accel build --out``);
        ``cdr``: call records on, to that sink (``db``: a SQLite file of its own,
        ``webhook``: ``webhook_url``, ``file``: a JSON-lines file), off when empty;
        ``settings``: ``PKS_NAME=value`` assignments (``--pks-env``)."""
        name = "pks" if accel is not None else "pks-pure"
        notes = [] if accel is not None else ["pure Python"]
        if workers != 1:
            name += f"-w{workers}"
        notes.append(f"{workers} workers" if workers != 1 else "1 process")
        if cdr:
            name += f"-cdr-{cdr}"
            notes.append(f"CDRs to {cdr}")
        notes += settings
        label = f"pks ({', '.join(notes)})"
        super().__init__(name, label, PKS_IP)
        self.settings = settings
        self.admin_port = admin_port
        self.workers = workers
        self.accel = accel
        self.cdr = cdr
        self.webhook_url = webhook_url

    def launch(self, db: Path, workdir: Path, extra: tuple[str, ...]) -> procs.Proc:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PKS_")}
        env.update(
            PKS_LISTEN=f"udp:{self.ip}:{self.port}",
            PKS_DB_URL=f"sqlite:///{db}",
            PKS_ADMIN_LISTEN=f"127.0.0.1:{self.admin_port}",
            PKS_LOG_LEVEL="WARNING",
            PKS_DS_PING_INTERVAL="0",  # as the Kamailio config: no keepalives
            PKS_WORKERS=str(self.workers),
        )
        if self.cdr:  # call records (docs/cdr.md), the spool in the scratch directory
            env.update(PKS_CDR_SINKS=self.cdr, PKS_CDR_SPOOL=str(workdir / f"{self.name}.spool"))
            if self.cdr == "db":
                env["PKS_CDR_DB_URL"] = f"sqlite:///{workdir / (self.name + '.cdr.db')}"
            elif self.cdr == "file":
                env["PKS_CDR_FILE"] = str(workdir / f"{self.name}.cdr.jsonl")
            elif self.webhook_url is not None:
                env["PKS_CDR_WEBHOOK_URL"] = self.webhook_url
        with_accel(env, self.accel)
        for assignment in (*self.settings, *extra):
            key, _, value = assignment.partition("=")
            env[key] = value
        return procs.start(self.name, [sys.executable, "-m", "pks", "run"], workdir, env=env,
                           cwd=REPO)  # fmt: skip

    def logged_ready(self) -> bool:
        return self.proc is not None and "pks: ready" in self.proc.stderr_text()


def with_accel(env: dict[str, str], accel: Path | None) -> dict[str, str]:
    """``env`` with the compiled copy of pks (if any) first on PYTHONPATH."""
    if accel is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(accel), env.get("PYTHONPATH")) if p)
    return env


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pks_available() -> str | None:
    """None when ``python -m pks run`` can be started, else why not."""
    try:
        import pks.server  # noqa: F401
    except Exception as exc:  # any import failure means the runner is not there yet
        return f"`import pks.server` fails: {type(exc).__name__}: {exc}"
    return None
