"""SIPp callers and callees: start them, bound them, read what they counted.

The callee (``sipp/uas.xml``) runs for a whole target phase, one per gateway address. Each
load step starts a fresh caller (``sipp/call.xml``, nothing read per call; scenario 2's
``sipp/uac.xml`` reads a called number per call from ``-inf``) with a fixed number of calls
at a fixed rate and a global timeout, then reads SIPp's statistics file (``-trace_stat``):
calls, failures, retransmissions, and the rate at which calls were created (``achieved_rate``,
from the 1-second rows). Both ends get ``BUFF_SIZE`` socket buffers (``-buff_size``). A call counts
as failed when SIPp says so: a missing message after ``recv_timeout`` (retransmissions
included), an unexpected message, or a send error. Latency comes from ``-trace_shortmsg``
(microsecond timestamps of every message sent and received): INVITE first sent → first 200
(and 180) received, per Call-ID. SIPp's own ``rtd`` timer only has millisecond resolution.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pksbench import procs

SCENARIOS = Path(__file__).resolve().parent.parent / "sipp"
BUFF_SIZE = 1 << 20  # SIPp's socket send and receive buffers (-buff_size), both ends


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise SystemExit("sipp not found: install Debian's sip-tester (scripts/bench does)")
    return path


def start_uas(
    ip: str, port: int, logdir: Path, recv_timeout_ms: int, buff_size: int | None = BUFF_SIZE
) -> procs.Proc:
    """A callee on ``ip:port``; it answers every INVITE with 180 then 200 and waits for BYE."""
    argv = [
        sipp_binary(),
        "-sf",
        str(SCENARIOS / "uas.xml"),
        "-i",
        ip,
        "-p",
        str(port),
        "-t",
        "u1",
        "-nostdin",
        "-recv_timeout",
        str(recv_timeout_ms),
        "-trace_stat",
        "-stf",
        str(logdir / f"uas-{ip}.csv"),
        "-fd",
        "1",
        "-max_recv_loops",
        "5000",
        "-max_sched_loops",
        "5000",
    ]
    if buff_size:
        argv += ["-buff_size", str(buff_size)]
    return procs.start(f"uas-{ip}", argv, logdir, cwd=logdir)


@dataclass
class UacResult:
    """What one caller run counted (cumulative SIPp counters at exit)."""

    rate: float
    planned: int
    created: int = 0
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    callee_retransmissions: int = 0  # set by the caller of finish_uac when it reads them
    achieved_rate: float | None = None
    failure_kinds: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None
    wall_seconds: float = 0.0
    creation_seconds: float | None = None
    invite_200_ms: list[float] = field(default_factory=list)
    invite_180_ms: list[float] = field(default_factory=list)
    rtd_repartition: dict[str, int] = field(default_factory=dict)
    unexpected: dict[str, int] = field(default_factory=dict)

    @property
    def failed_ratio(self) -> float:
        """Failed calls over planned calls (a call never created counts as failed)."""
        if self.planned == 0:
            return 0.0
        return (self.planned - self.successful) / self.planned

    @property
    def retrans_ratio(self) -> float:
        """Retransmissions (caller's and callee's) per planned call."""
        if self.planned == 0:
            return 0.0
        return (self.retransmissions + self.callee_retransmissions) / self.planned

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {v}" for k, v in self.failure_kinds.items() if v)
        if self.unexpected:
            kinds += "; unexpected: " + ", ".join(f"{v}x {k}" for k, v in self.unexpected.items())
        return (
            f"{self.successful}/{self.planned} ok, {self.failed} failed"
            f"{' (' + kinds + ')' if kinds else ''}, {self.retransmissions}"
            f"+{self.callee_retransmissions} retrans, rate {_g(self.achieved_rate)},"
            f" exit {self.exit_code}, {self.wall_seconds:.1f}s"
        )


@dataclass
class Uac:
    """A caller run in progress (see ``start_uac`` / ``finish_uac``)."""

    proc: procs.Proc
    result: UacResult
    stat: Path
    errors: Path
    short: Path | None
    started: float
    timeout_s: float

    def held(self) -> tuple[int, int]:
        """(calls created, calls open) from the running SIPp's statistics."""
        rows = _rows(self.stat)
        if not rows:
            return 0, 0
        last = rows[-1]
        return int(float(last.get("TotalCallCreated") or 0)), int(
            float(last.get("CurrentCall") or 0)
        )


def call_scenario(workdir: Path, hold: bool) -> Path:
    """``sipp/call.xml``, without its ``<pause/>`` when calls are not held."""
    if hold:
        return SCENARIOS / "call.xml"
    path = workdir / "call-nohold.xml"
    if not path.exists():
        text = (SCENARIOS / "call.xml").read_text(encoding="latin-1")
        path.write_text(text.replace("  <pause/>\n", ""), encoding="latin-1")
    return path


def start_uac(
    target: tuple[str, int],
    rate: float,
    calls: int,
    hold_ms: int,
    numbers: Path | str,
    workdir: Path,
    name: str,
    *,
    uac_ip: str,
    recv_timeout_ms: int = 4000,
    trace_messages: bool = False,
    limit: int | None = None,
    buff_size: int | None = None,
    scenario_file: Path | None = None,
) -> Uac:
    """Start placing ``calls`` calls at ``rate`` per second; SIPp stops by itself when done.

    ``numbers``: a file (``-inf``, ``sipp/uac.xml``: a called number and a destination per
    call) or the called number itself (``sipp/call.xml``: nothing read per call; without a
    hold, the scenario has no pause; ``scenario_file`` instead, e.g. ``sipp/flooder.xml``).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    stat = workdir / f"{name}.csv"
    errors = workdir / f"{name}.errors"
    short = workdir / f"{name}.msg" if trace_messages else None
    timeout_s = calls / rate + hold_ms / 1000 + 4 * recv_timeout_ms / 1000 + 10
    if limit is None:
        limit = max(1000, math.ceil(rate * (hold_ms / 1000 + 10)))
    if isinstance(numbers, Path):
        scenario = ["-sf", str(SCENARIOS / "uac.xml"), "-inf", str(numbers)]
    else:
        file = scenario_file or call_scenario(workdir, hold_ms > 0)
        scenario = ["-sf", str(file), "-s", numbers]
    argv = [
        sipp_binary(),
        f"{target[0]}:{target[1]}",
        *scenario,
        "-i",
        uac_ip,
        "-t",
        "u1",
        "-r",
        f"{rate:g}",
        "-rp",
        "1000",
        "-m",
        str(calls),
        "-l",
        str(limit),
        "-d",
        str(hold_ms),
        "-recv_timeout",
        str(recv_timeout_ms),
        "-default_behaviors",
        "abortunexp",
        "-timeout",
        f"{math.ceil(timeout_s)}s",
        "-nostdin",
        "-trace_stat",
        "-stf",
        str(stat),
        "-fd",
        "1",
        "-trace_err",
        "-error_file",
        str(errors),
        "-max_recv_loops",
        "5000",
        "-max_sched_loops",
        "5000",
    ]
    if short is not None:
        argv += ["-trace_shortmsg", "-shortmessage_file", str(short)]
    if buff_size:
        argv += ["-buff_size", str(buff_size)]
    proc = procs.start(name, argv, workdir, cwd=workdir)
    result = UacResult(rate=rate, planned=calls)
    return Uac(proc, result, stat, errors, short, time.monotonic(), timeout_s)


def finish_uac(uac: Uac) -> UacResult:
    """Wait (bounded by SIPp's own timeout plus a margin) and read the counters."""
    result = uac.result
    result.exit_code = procs.wait(uac.proc, timeout=uac.timeout_s + 15)
    result.wall_seconds = time.monotonic() - uac.started
    _read_stats(uac.stat, result)
    result.unexpected = unexpected_messages(uac.errors)
    if uac.short is not None:
        result.invite_200_ms, result.invite_180_ms = message_latencies(uac.short)
    return result


def _rows(stat: Path) -> list[dict[str, str]]:
    try:
        with stat.open(newline="") as f:
            return list(csv.DictReader(f, delimiter=";"))
    except (OSError, csv.Error):
        return []


def _epoch(stamp: str) -> float:
    return float(stamp.split("\t")[-1])


FAILURE_KINDS = (
    "FailedTimeoutOnRecv",
    "FailedUnexpectedMessage",
    "FailedMaxUDPRetrans",
    "FailedCannotSendMessage",
    "FailedCallRejected",
    "FailedOutboundCongestion",
)


def _read_stats(stat: Path, result: UacResult) -> None:
    rows = _rows(stat)
    if not rows:
        return
    last = rows[-1]

    def num(key: str) -> int:
        return int(float(last.get(key) or 0))

    result.created = num("TotalCallCreated")
    result.successful = num("SuccessfulCall(C)")
    result.failed = num("FailedCall(C)")
    result.retransmissions = num("Retransmissions(C)")
    result.failure_kinds = {k: num(f"{k}(C)") for k in FAILURE_KINDS}
    start = _epoch(last["StartTime"])
    for row in rows:
        if int(float(row.get("TotalCallCreated") or 0)) >= result.planned:
            result.creation_seconds = _epoch(row["CurrentTime"]) - start
            break
    result.achieved_rate = achieved_rate(rows, result.planned)
    result.rtd_repartition = {
        k.removeprefix("ResponseTimeRepartition1_"): int(v or 0)
        for k, v in last.items()
        if k and k.startswith("ResponseTimeRepartition1_")
    }


def achieved_rate(rows: list[dict[str, str]], planned: int) -> float | None:
    """Calls created per second while SIPp was creating them (from its 1 s statistics rows).

    The last row written before all ``planned`` calls were created gives created / elapsed
    (a run's start-up counts against it); a run that created them all before its first row
    after 1 s gives planned / that row's time. None without a usable row.
    """
    if not rows:
        return None
    start = _epoch(rows[-1]["StartTime"])
    best: float | None = None
    for row in rows:
        created = int(float(row.get("TotalCallCreated") or 0))
        elapsed = _epoch(row["CurrentTime"]) - start
        if created >= planned:
            if best is None and elapsed > 0:
                best = planned / elapsed
            break
        if elapsed >= 1.0:
            best = created / elapsed
    return best


def _g(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}"


_UNEXPECTED = re.compile(r"Aborting call on unexpected message .*?received '([^\r\n]*)")


def unexpected_messages(errors: Path, top: int = 3) -> dict[str, int]:
    """The most frequent first lines of messages that aborted calls as unexpected."""
    try:
        text = errors.read_text(errors="replace")
    except OSError:
        return {}
    found = Counter(_UNEXPECTED.findall(text))
    return dict(found.most_common(top))


def message_latencies(short: Path) -> tuple[list[float], list[float]]:
    """INVITE→200 and INVITE→180 in ms, from a ``-trace_shortmsg`` file."""
    sent: dict[str, float] = {}
    got200: dict[str, float] = {}
    got180: dict[str, float] = {}
    try:
        f = short.open(errors="replace")
    except OSError:
        return [], []
    with f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 7 or parts[5] != "CSeq:1 INVITE":
                continue
            when, direction, callid, first = float(parts[2]), parts[3], parts[4], parts[6]
            if direction == "S":
                sent.setdefault(callid, when)
            elif first.startswith("SIP/2.0 200"):
                got200.setdefault(callid, when)
            elif first.startswith("SIP/2.0 180"):
                got180.setdefault(callid, when)
    to200 = [(t - sent[c]) * 1000 for c, t in got200.items() if c in sent]
    to180 = [(t - sent[c]) * 1000 for c, t in got180.items() if c in sent]
    return to200, to180


def invite_outcomes(short: Path) -> tuple[Counter[str], int, float | None]:
    """Per call of a ``-trace_shortmsg`` file, the first final answer to its INVITE.

    Returns the count of each status code received first ("200", "503", …), the number of
    calls whose INVITE got no final answer at all (dropped, or the caller gave up), and when
    the last 200 came, in seconds after the first INVITE was sent (None: no 200).
    """
    sent: set[str] = set()
    final: dict[str, str] = {}
    first_sent: float | None = None
    last_200: float | None = None
    try:
        f = short.open(errors="replace")
    except OSError:
        return Counter(), 0, None
    with f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 7 or parts[5] != "CSeq:1 INVITE":
                continue
            when, direction, callid, first = float(parts[2]), parts[3], parts[4], parts[6]
            if direction == "S":
                sent.add(callid)
                first_sent = when if first_sent is None else first_sent
            elif first.startswith("SIP/2.0 ") and callid not in final:
                code = first[8:11]
                if code[:1] in "23456":
                    final[callid] = code
                    if code == "200":
                        last_200 = when
    counts = Counter(final[c] for c in sent if c in final)
    until = None if last_200 is None or first_sent is None else last_200 - first_sent
    return counts, sum(1 for c in sent if c not in final), until


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def uas_retransmissions(logdir: Path, ip: str) -> int:
    """Retransmissions (its 200s) the callee on ``ip`` made since it started."""
    rows = _rows(logdir / f"uas-{ip}.csv")
    return int(float(rows[-1].get("Retransmissions(C)") or 0)) if rows else 0


def uas_counts(logdir: Path, ip: str) -> tuple[int, int]:
    """Calls received and calls completed by the callee on ``ip`` since it started."""
    rows = _rows(logdir / f"uas-{ip}.csv")
    if not rows:
        return 0, 0
    last = rows[-1]
    return int(float(last.get("IncomingCall(C)") or 0)), int(
        float(last.get("SuccessfulCall(C)") or 0)
    )
