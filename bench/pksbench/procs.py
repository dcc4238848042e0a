"""Processes the benchmark starts, and what /proc says about them.

Every process is started in its own session and registered, so that ``stop_all`` (called on
normal exit, on error and on SIGINT/SIGTERM) ends each of them — by its process-group id,
never by name. CPU time and memory of a proxy are summed over the proxy's whole process tree
(Kamailio's workers, pks's workers if any): ``utime + stime`` from ``/proc/<pid>/stat``,
``VmRSS`` from ``/proc/<pid>/status`` and ``Pss`` from ``/proc/<pid>/smaps_rollup`` (RSS counts
a shared page once per process; PSS splits it, which is fairer to Kamailio's shared memory).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    """A started process, its log files and its name for messages."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stderr_text(self) -> str:
        try:
            return self.stderr.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.stderr_text().splitlines()[-lines:])


_running: list[Proc] = []
_names: dict[str, int] = {}


def start(
    name: str,
    argv: Sequence[str],
    logdir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Proc:
    """Start ``argv`` in a new session, stdout/stderr to ``logdir/name[-N].{out,err}``.

    A name started again in the same directory gets ``-2``, ``-3``… so no log is overwritten.
    """
    logdir.mkdir(parents=True, exist_ok=True)
    key = str(logdir / name)
    _names[key] = _names.get(key, 0) + 1
    stem = name if _names[key] == 1 else f"{name}-{_names[key]}"
    out, err = logdir / f"{stem}.out", logdir / f"{stem}.err"
    with out.open("wb") as fo, err.open("wb") as fe:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=fo,
            stderr=fe,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    proc = Proc(name, popen, out, err)
    _running.append(proc)
    return proc


def stop(proc: Proc, grace: float = 5.0) -> int | None:
    """SIGTERM the process group, SIGKILL it after ``grace`` seconds; returns the exit code."""
    if proc in _running:
        _running.remove(proc)
    if proc.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.popen.wait(timeout=grace)
    # Children that outlived their leader (still in its process group) go too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.popen.returncode


def stop_all() -> None:
    for proc in reversed(list(_running)):
        stop(proc, grace=3.0)


def wait(proc: Proc, timeout: float) -> int | None:
    """Wait for the process to exit; on timeout stop it. Returns the exit code."""
    try:
        return proc.popen.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        return None
    finally:
        if proc in _running and not proc.alive():
            _running.remove(proc)


# --- /proc ------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after "pid (comm)"; comm may hold spaces and parentheses.
    return text[text.rindex(")") + 2 :].split()


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children.get(p, ()))
    return found


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """utime + stime of each live process, in seconds."""
    result = {}
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            result[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return result


def cpu_delta(before: Mapping[int, float], after: Mapping[int, float]) -> float:
    """CPU seconds spent between two ``cpu_seconds`` samples (new processes count in full)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


@dataclass(frozen=True, slots=True)
class Memory:
    rss_kib: int
    pss_kib: int
    processes: int

    @property
    def rss_mib(self) -> float:
        return self.rss_kib / 1024

    @property
    def pss_mib(self) -> float:
        return self.pss_kib / 1024


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(pids: Sequence[int]) -> Memory:
    """RSS and PSS summed over ``pids``."""
    rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids)
    pss = sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
    return Memory(rss, pss, len(pids))


def udp_bound(ip: str, port: int) -> bool:
    """Whether some socket is bound to ``ip:port`` (IPv4 UDP), from ``/proc/net/udp``."""
    want = f"{int.from_bytes(bytes(map(int, ip.split('.'))), 'little'):08X}:{port:04X}"
    try:
        with open("/proc/net/udp") as f:
            return any(line.split()[1] == want for line in list(f)[1:])
    except OSError:
        return False


def sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)
