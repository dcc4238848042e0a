"""``pks run`` with ``PKS_WORKERS`` > 1: a supervisor process and its worker processes.

The supervisor creates the shared store (:mod:`pks.workers.shared`) and binds the UDP
sockets of every worker, in worker order, with the steering program of
:mod:`pks.workers.steer` (each datagram reaches its owner's socket); then it starts the workers
by running ``python -m pks run --worker INDEX:STORE`` (a fresh interpreter each: no fork of
an event loop or of threads), worker 0 first — it prepares a new database and leads — and
the others once it is up. When all are up it logs ``pks: ready``. It then:

* restarts a worker that dies (after 1 s, doubling up to 30 s while it keeps dying within
  10 s of its start) on the same UDP sockets; the others keep routing meanwhile, and the
  steering program sends them what it owned until its successor is up;
* passes SIGHUP to worker 0 (which reloads every worker), and SIGTERM/SIGINT to all — each
  drains its calls (``PKS_DRAIN_TIMEOUT``, docs/operations.md) — waits for them (the drain
  timeout plus 10 s, then SIGKILL) and removes the store; a second SIGTERM is passed on
  too (stop without waiting).

A worker whose supervisor dies gets SIGTERM (``PR_SET_PDEATHSIG``), so no orphan keeps the
ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from types import FrameType
from typing import Any

from pks import __version__, accel
from pks.config import Settings
from pks.net import Proto
from pks.notify import notify
from pks.transport.listen import bind_socket
from pks.workers import steer
from pks.workers.journal import journal_path
from pks.workers.node import WorkerNode
from pks.workers.shared import SharedStore

__all__ = ["Supervisor", "run_worker"]

log = logging.getLogger("pks.workers")

STOP_GRACE = 10.0
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
STABLE_AFTER = 10.0
TICK = 0.05  # seconds between two looks while a worker starts or restarts
SETTLED_WAIT = 1.0  # at most, between two looks while every worker is up (signals wake it)


class Supervisor:
    """Starts, watches and stops the worker processes of one instance."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.count = settings.worker_count
        self.path = SharedStore.create(self.count)
        self.store = SharedStore(self.path, 0)
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * self.count
        self.started: list[float] = [0.0] * self.count
        self.backoff: list[float] = [FIRST_BACKOFF] * self.count
        self.due: list[float | None] = [None] * self.count
        self.stopping = False
        self.draining = False  # the workers were asked to stop
        self.hup = False
        self.groups: list[list[socket.socket]] = []  # per UDP address, a socket per worker
        self.steering: list[bool] | None = None  # the live set the program was built for

    def _bind_udp(self) -> None:
        """Bind every worker's UDP sockets, in worker order, and attach the steering."""
        for info in self.settings.sockets:
            if info.proto is Proto.UDP:
                group: list[socket.socket] = []
                self.groups.append(group)
                for _ in range(self.count):
                    group.append(bind_socket(info, reuse_port=True)[0])
        self._steer([True] * self.count)

    def _steer(self, live: list[bool]) -> None:
        """(Re)attach the steering program for ``live`` workers; drain the queues of the
        workers that went down (what waits there belongs to calls they lost)."""
        if live == self.steering or not any(live) or not self.groups:
            return
        try:
            code = steer.program(self.count, live)
            for group in self.groups:
                steer.attach(group[0], code)
        except OSError as exc:
            if self.steering is None:
                log.warning("pks: no kernel steering (%s): workers hand messages off", exc)
            self.steering = live
            return
        before = self.steering or [True] * self.count
        for i, (was, now) in enumerate(zip(before, live, strict=True)):
            if was and not now:
                for group in self.groups:
                    steer.drain(group[i])
        self.steering = live

    def _spawn(self, index: int) -> None:
        argv = [sys.executable, "-m", "pks", "run", "--worker", f"{index}:{self.path}"]
        fds = [group[index].fileno() for group in self.groups]
        if fds:
            argv += ["--sockets", ",".join(map(str, fds))]
        self.store.clear_worker(index)
        self.procs[index] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, pass_fds=fds)
        self.started[index] = time.monotonic()
        self.due[index] = None

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping and self.draining:  # a second SIGTERM: the workers stop now
            for i in range(self.count):
                self._signal(i, signal.SIGTERM)
        self.stopping = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self.hup = True

    def _wait_up(self, indexes: range) -> bool:
        """Wait until those workers are up; False if one exits first or we are stopped."""
        while not self.stopping:
            for i in indexes:
                proc = self.procs[i]
                if proc is not None and proc.poll() is not None:
                    log.error(
                        "pks: worker %d exited with status %d while starting", i, proc.returncode
                    )
                    return False
            if all(self.store.ready(i) for i in indexes):
                return True
            time.sleep(TICK)
        return False

    def run(self) -> int:
        """Run the instance until SIGTERM/SIGINT; the exit status of ``pks run``."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        try:
            try:
                self._bind_udp()
            except OSError as exc:
                log.error("pks: %s", exc)
                return 1
            self._spawn(0)
            if not self._wait_up(range(1)):
                return 0 if self.stopping else 1
            for i in range(1, self.count):
                self._spawn(i)
            if not self._wait_up(range(self.count)):
                return 0 if self.stopping else 1
            pids = ", ".join(str(self.store.pid(i)) for i in range(self.count))
            listening = ", ".join(str(s) for s in self.settings.sockets)
            log.info(
                "pks: ready (version %s, core %s) on %s; %d workers (pids %s)",
                __version__,
                accel.status(),
                listening,
                self.count,
                pids,
            )
            notify("READY=1", f"STATUS=routing on {listening}, {self.count} workers")
            self._watch()
            notify("STOPPING=1")
            return 0
        finally:
            self._stop_all()
            for group in self.groups:
                for sock in group:
                    sock.close()
            self.store.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            for i in range(self.count):  # the workers' journals (pks.workers.journal)
                with contextlib.suppress(OSError):
                    os.unlink(journal_path(self.path, i))

    def _watch(self) -> None:
        with _signal_wakeups() as wait:
            self._watch_until_stopped(wait)

    def _watch_until_stopped(self, wait: Callable[[float], None]) -> None:
        """Look after the workers until SIGTERM/SIGINT: every ``TICK`` while one is (re)starting,
        otherwise when a signal comes (a worker's death is a SIGCHLD, SIGHUP a reload)."""
        while not self.stopping:
            if self.hup:
                self.hup = False
                self._signal(0, signal.SIGHUP)
            now = time.monotonic()
            for i, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None:
                    self._died(i, proc.returncode, now)
                due = self.due[i]
                if due is not None and now >= due and not self.stopping:
                    log.warning("pks: restarting worker %d", i)
                    self._spawn(i)
            live = [self.store.port(i) != 0 for i in range(self.count)]
            self._steer(live)
            settled = all(live) and all(due is None for due in self.due)
            wait(SETTLED_WAIT if settled else TICK)

    def _died(self, index: int, status: int, now: float) -> None:
        self.procs[index] = None
        self.store.clear_worker(index)
        if now - self.started[index] >= STABLE_AFTER:
            self.backoff[index] = FIRST_BACKOFF
        delay = self.backoff[index]
        self.backoff[index] = min(MAX_BACKOFF, delay * 2)
        self.due[index] = now + delay
        log.error(
            "pks: worker %d exited with status %d; restarting it in %.0f s", index, status, delay
        )

    def _signal(self, index: int, signum: int) -> None:
        proc = self.procs[index]
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    def _stop_all(self) -> None:
        for i in range(self.count):
            self._signal(i, signal.SIGTERM)
        self.draining = True
        deadline = time.monotonic() + self.settings.drain_timeout + STOP_GRACE
        while True:
            live = [proc is not None and proc.poll() is None for proc in self.procs]
            if not any(live):
                break
            if time.monotonic() >= deadline:
                for proc in self.procs:
                    if proc is not None and proc.poll() is None:
                        proc.kill()
                        proc.wait(timeout=5)
                break
            # a worker with no call left exits first; its share of the sources goes to the
            # ones still draining, so that a new call from there is answered 503, not dropped
            # into a socket nobody reads
            self._steer(live)
            time.sleep(TICK)
        log.info("pks: stopped (%d workers)", self.count)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """SIGCHLD's handler: its arrival is what matters (it writes to the wake-up pipe)."""


@contextlib.contextmanager
def _signal_wakeups() -> Iterator[Callable[[float], None]]:
    """A wait of at most ``timeout`` seconds that any signal ends (``signal.set_wakeup_fd``),
    so that an idle supervisor does not wake 20 times a second to look at its workers."""
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    previous_chld = signal.signal(signal.SIGCHLD, _ignore)

    def wait(timeout: float) -> None:
        select.select([read_end], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(read_end, 512):
                pass

    try:
        yield wait
    finally:
        signal.signal(signal.SIGCHLD, previous_chld)
        signal.set_wakeup_fd(previous_fd)
        os.close(read_end)
        os.close(write_end)


def _die_with_parent() -> None:
    """Ask the kernel for SIGTERM when the supervisor dies (Linux; elsewhere a no-op)."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def run_worker(
    spec: str, sockets: str, serve: Callable[[WorkerNode], Coroutine[Any, Any, None]]
) -> int:
    """The body of ``pks run --worker INDEX:STORE [--sockets FD,…]``; its exit status.

    ``sockets``: the UDP sockets the supervisor bound for this worker, one per UDP address
    of PKS_LISTEN in configuration order. ``serve`` runs this worker's server until it stops
    (``pks run`` passes ``Server(settings, node).run``: the server is given, not imported,
    so that this package never depends on it)."""
    from pks.loop import new_event_loop

    index_text, _, path = spec.partition(":")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor handles Ctrl-C
    _die_with_parent()
    try:
        store = SharedStore(path, int(index_text))
        udp = [socket.socket(fileno=int(fd)) for fd in sockets.split(",") if fd]
    except (OSError, ValueError) as exc:
        log.error(
            "pks: worker %s cannot open the shared store %s or its sockets: %s",
            index_text,
            path,
            exc,
        )
        return 1
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(serve(WorkerNode(store, udp)))
    except Exception as exc:
        log.error("pks: worker %d cannot start: %s", store.index, exc)
        return 1
    finally:
        loop.close()
        store.close()
    return 0
