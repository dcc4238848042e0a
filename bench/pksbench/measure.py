"""Scenarios 1 and 3: the same SIPp load through each target, one target at a time.

Per target, with one SIPp callee (the gateway) running for the whole phase:

1. **check** — a few calls at a low rate must all succeed; otherwise the target is reported
   as broken and skipped.
2. **latency and CPU** — a fixed moderate rate for a fixed time: INVITE→200 p50/p99 from
   SIPp's message trace, proxy CPU seconds (all processes of its tree) per successful call.
3. **maximum rate** — steps of ``step_seconds``, each a fresh SIPp caller: the rate grows
   ``growth`` times from ``start_rate`` until a step fails, then is bisected until the lowest
   failed rate is within ``precision`` of the highest passed one. A step passes (``judge``)
   with at most ``MAX_FAILED`` failed calls, at most ``MAX_RETRANS`` retransmissions per call
   (the caller's and the callee's) and SIPp creating calls at ``MIN_PACE`` of the target rate
   or more. A step that follows a failed one starts on fresh processes (proxy and callee
   restarted): it measures its own rate, not the aftermath of the overload before (failed
   calls' transactions and retransmissions go on for up to 32 s, Timer B/H). A failed step
   is tried again ``confirm`` times (on fresh processes) before the rate counts as failed,
   for every target alike. The same rules apply to the SIPp direct ceiling.
   The proxy's CPU seconds from the start of a step until it is idle again, per successful
   call, are kept with each step: the step at the target's maximum gives the CPU per call at
   saturation.
4. **flood** (scenario 3, proxies, when ``plan.flood_rate``) — on fresh processes, calls at
   half the clean maximum for ``flood_seconds``; then again on fresh processes with
   ``pksbench.flood`` sending ``flood_rate`` datagrams/s from strangers' loopback addresses
   from 1 s before the first call to 1 s after. Failed calls of both runs, and the proxy CPU
   the flood cost (with minus without, over the flood's duration).
5. **memory** — the proxy and the callee are restarted, its idle memory read, then N calls
   are opened at ``concurrent_rate`` and held; RSS and PSS (summed over its processes) are
   read while all N are open, then the caller is stopped (the proxy is stopped right after).

Every wait is bounded; every process started here is stopped at the end of its phase.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from pksbench import procs, sipp
from pksbench.tables import GATEWAY_IPS, UAC_IP
from pksbench.targets import Target

BENCH = Path(__file__).resolve().parent.parent
_T = TypeVar("_T")
GATEWAYS = GATEWAY_IPS[:1]  # scenario 1: one callee (as few SIPp processes as it needs)

MAX_FAILED = 0.001  # a step passes with at most 0.1 % of its calls failed,
MAX_RETRANS = 0.01  # at most 1 retransmission per 100 calls (caller's and callee's),
MIN_PACE = 0.95  # and SIPp creating calls at 95 % of the target rate or more


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how hard to push; ``quick`` trades precision for a short run."""

    quick: bool
    step_seconds: float
    start_rate: float
    growth: float
    rate_cap: float
    precision: float  # bisect until (lowest failed - highest passed) / highest passed <= this
    confirm: int
    hold_ms: int  # between ACK and BYE in the rate steps (0: the scenario has no pause)
    latency_rate: float
    latency_seconds: float
    concurrent: int
    concurrent_rate: float
    hold_margin_s: float
    buff_size: int = sipp.BUFF_SIZE
    flood_rate: float = 0.0  # datagrams/s from strangers in the flood phase (0: no flood)
    flood_seconds: float = 10.0
    recv_timeout_ms: int = 4000
    ready_timeout: float = 60.0
    settle_timeout: float = 10.0


def make_plan(quick: bool, concurrent: int | None = None, **overrides: float | None) -> Plan:
    """The full plan (the benchmark's rules) or the quick one; ``overrides`` (non-None) win."""
    if quick:
        plan = Plan(
            quick=True,
            step_seconds=4,
            start_rate=500,
            growth=2,
            rate_cap=32000,
            precision=0.13,
            confirm=0,
            hold_ms=0,
            latency_rate=200,
            latency_seconds=5,
            concurrent=concurrent or 1000,
            concurrent_rate=250,
            hold_margin_s=5,
            flood_seconds=5,
        )
    else:
        plan = Plan(
            quick=False,
            step_seconds=10,
            start_rate=500,
            growth=1.5,
            rate_cap=32000,
            precision=0.03,
            confirm=1,
            hold_ms=0,
            latency_rate=200,
            latency_seconds=30,
            concurrent=concurrent or 10_000,
            concurrent_rate=500,
            hold_margin_s=8,
            flood_rate=20_000,
            flood_seconds=10,
        )
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    return replace(plan, **given) if given else plan


@dataclass
class Step:
    rate: float
    passed: bool
    result: sipp.UacResult
    cpu_ms_per_call: float | None = None  # proxies only: until idle again, per successful call
    why: str = ""  # which rule a failed step broke

    def as_dict(self) -> dict[str, object]:
        r = self.result
        return {
            "rate": self.rate,
            "passed": self.passed,
            "why": self.why,
            "cpu_ms_per_call": self.cpu_ms_per_call,
            "planned": r.planned,
            "successful": r.successful,
            "failed": r.failed,
            "failed_ratio": round(r.failed_ratio, 6),
            "retransmissions": r.retransmissions,
            "callee_retransmissions": r.callee_retransmissions,
            "retrans_ratio": round(r.retrans_ratio, 6),
            "achieved_rate": r.achieved_rate,
            "failure_kinds": {k: v for k, v in r.failure_kinds.items() if v},
            "creation_seconds": r.creation_seconds,
            "exit_code": r.exit_code,
            "rtd_repartition_ms": r.rtd_repartition,
            "unexpected": r.unexpected,
        }


def judge(res: sipp.UacResult, rate: float) -> str:
    """Why a step at ``rate`` fails the rules ("" when it passes)."""
    why = []
    if res.failed_ratio > MAX_FAILED:
        why.append(f"{_pct(res.failed_ratio)} failed")
    if res.retrans_ratio > MAX_RETRANS:
        why.append(f"{res.retrans_ratio * 100:.3g} retransmissions per 100 calls")
    if res.achieved_rate is None or res.achieved_rate < MIN_PACE * rate:
        got = "?" if res.achieved_rate is None else f"{res.achieved_rate / rate * 100:.0f} %"
        why.append(f"pace {got} of the target")
    if res.exit_code not in (0, 1):
        why.append(f"SIPp exit {res.exit_code}")
    return ", ".join(why)


@dataclass
class FloodResult:
    """Legitimate calls at half the clean maximum, without and then with a stranger's flood."""

    legit_rate: float
    flood_rate_asked: float
    calls: int = 0
    failed_clean: int | None = None
    failed_flood: int | None = None
    retrans_clean: int | None = None
    retrans_flood: int | None = None
    cpu_clean_s: float | None = None  # proxy CPU from the caller's start until idle again
    cpu_flood_s: float | None = None
    flood: dict[str, object] = field(default_factory=dict)  # what the flood process sent
    error: str | None = None

    @property
    def flood_seconds(self) -> float | None:
        value = self.flood.get("seconds")
        return float(value) if isinstance(value, (int, float)) and value > 0 else None

    @property
    def flood_rate_reached(self) -> float | None:
        value = self.flood.get("rate_reached")
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def answers(self) -> int | None:
        value = self.flood.get("answers")
        return value if isinstance(value, int) else None

    @property
    def cpu_share(self) -> float | None:
        """CPU the flood cost the proxy, in cores (1.0 = one core busy) over the flood."""
        if self.cpu_clean_s is None or self.cpu_flood_s is None or not self.flood_seconds:
            return None
        return (self.cpu_flood_s - self.cpu_clean_s) / self.flood_seconds

    @property
    def us_per_datagram(self) -> float | None:
        sent = self.flood.get("sent")
        if self.cpu_clean_s is None or self.cpu_flood_s is None or not isinstance(sent, int):
            return None
        return (self.cpu_flood_s - self.cpu_clean_s) * 1e6 / sent if sent else None

    def as_dict(self) -> dict[str, object]:
        data = dict(vars(self))
        data["cpu_share_cores"] = self.cpu_share
        data["answers"] = self.answers
        data["us_per_datagram"] = self.us_per_datagram
        return data


@dataclass
class TargetResult:
    """Everything measured for one target (None: not measured / not applicable)."""

    name: str
    label: str
    error: str | None = None
    start_seconds: float | None = None
    check: str | None = None
    gateway_calls: dict[str, int] = field(default_factory=dict)
    max_cps: float | None = None
    max_cps_capped: bool = False
    lowest_failed: float | None = None
    steps: list[Step] = field(default_factory=list)
    latency_rate: float | None = None
    latency_calls: int | None = None
    latency_failed: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    p50_180_ms: float | None = None
    cpu_ms_per_call: float | None = None  # the median of cpu_samples_ms when there are some
    cpu_samples_ms: list[float] = field(default_factory=list)  # pksbench.moderate
    concurrent: int | None = None
    concurrent_reached: int | None = None
    concurrent_rate: float | None = None
    idle_rss_mib: float | None = None
    idle_pss_mib: float | None = None
    held_rss_mib: float | None = None
    held_pss_mib: float | None = None
    processes: int | None = None
    flood: FloodResult | None = None

    @property
    def rss_kib_per_call(self) -> float | None:
        if None in (self.held_rss_mib, self.idle_rss_mib) or not self.concurrent_reached:
            return None
        assert self.held_rss_mib is not None and self.idle_rss_mib is not None
        return (self.held_rss_mib - self.idle_rss_mib) * 1024 / self.concurrent_reached

    @property
    def pss_kib_per_call(self) -> float | None:
        if None in (self.held_pss_mib, self.idle_pss_mib) or not self.concurrent_reached:
            return None
        assert self.held_pss_mib is not None and self.idle_pss_mib is not None
        return (self.held_pss_mib - self.idle_pss_mib) * 1024 / self.concurrent_reached

    def step_cpu_ms(self, rate: float | None) -> float | None:
        """Proxy CPU per call in the passed step at ``rate`` (None: no such step)."""
        return next((s.cpu_ms_per_call for s in self.steps if s.rate == rate and s.passed), None)

    @property
    def saturation_cpu_ms(self) -> float | None:
        """Proxy CPU per call in the step at its own maximum rate."""
        return self.step_cpu_ms(self.max_cps)

    def as_dict(self) -> dict[str, object]:
        data = {k: v for k, v in vars(self).items() if k not in ("steps", "flood")}
        data["steps"] = [s.as_dict() for s in self.steps]
        data["flood"] = self.flood.as_dict() if self.flood is not None else None
        data["rss_kib_per_call"] = self.rss_kib_per_call
        data["pss_kib_per_call"] = self.pss_kib_per_call
        data["saturation_cpu_ms"] = self.saturation_cpu_ms
        return data


Log = Callable[[str], None]


class Runner:
    """Drives one target through the measurements (the flood when ``plan.flood_rate``)."""

    def __init__(
        self, target: Target, plan: Plan, db: Path, called: str, workdir: Path, log: Log
    ) -> None:
        self.target = target
        self.plan = plan
        self.db = db
        self.workdir = workdir / target.name
        self.called = called
        self.gateways = GATEWAYS
        self.log = log
        self.result = TargetResult(target.name, target.label)
        self._uas: list[procs.Proc] = []
        self._counter = 0

    # --- lifecycle ------------------------------------------------------------------------

    def run(self) -> TargetResult:
        t0 = time.monotonic()
        try:
            self._start_callees()
            self._start_target()
            if self._check():
                self._latency()
                self._max_rate()
                if self.target.is_proxy and self.plan.flood_rate > 0:
                    self._flood()
                if self.target.is_proxy:
                    self._memory()
        except RuntimeError as exc:
            self.result.error = str(exc)
            self.log(f"  {self.target.label}: ERROR {exc}")
        finally:
            self._stop()
        self.log(f"  {self.target.label}: done in {time.monotonic() - t0:.0f}s")
        return self.result

    def cpu_at(self, rate: float) -> Step | None:
        """On fresh processes, the check then one step at ``rate`` (None: the check failed or
        the target would not start): its CPU per call (scenario 5, ``pksbench.scaling``)."""
        return self._fresh(lambda: self._trial(rate))

    def moderate_cpu(self) -> float | None:
        """On fresh processes, the check then the latency phase again (the same rate, length
        and message trace): its CPU ms per call (``pksbench.moderate``)."""

        def measure() -> float | None:
            self._latency()
            return self.result.cpu_ms_per_call

        return self._fresh(measure)

    def _fresh(self, measure: Callable[[], _T]) -> _T | None:
        try:
            self._start_callees()
            self._start_target()
            return measure() if self._check() else None
        except RuntimeError as exc:
            self.result.error = str(exc)
            self.log(f"  {self.target.label}: ERROR {exc}")
            return None
        finally:
            self._stop()

    def _stop(self) -> None:
        self.target.stop()
        self._gateway_counts()
        for proc in self._uas:
            procs.stop(proc)
        self._uas.clear()

    def _start_callees(self) -> None:
        self._uas = start_callees(self.gateways, self.workdir, self.plan.buff_size)

    def _start_target(self) -> None:
        self.target.start(self.db, self.workdir, self.plan.ready_timeout)
        if self.result.start_seconds is None:
            self.result.start_seconds = self.target.start_seconds

    def _gateway_counts(self) -> None:
        """Add the calls the running callees received to the phase's counts."""
        if not self._uas:
            return
        time.sleep(1.2)  # callees write their statistics once a second
        counts = self.result.gateway_calls
        for ip in self.gateways:
            counts[ip] = counts.get(ip, 0) + sipp.uas_counts(self.workdir, ip)[0]

    def _restart(self) -> None:
        """Stop the proxy and the callees and start them again (nothing left of before)."""
        self._stop()
        self._start_callees()
        self._start_target()

    # --- helpers --------------------------------------------------------------------------

    def _uac(
        self,
        kind: str,
        rate: float,
        calls: int,
        *,
        hold_ms: int | None = None,
        trace: bool = False,
        limit: int | None = None,
    ) -> sipp.Uac:
        self._counter += 1
        return sipp.start_uac(
            self.target.address,
            rate,
            calls,
            self.plan.hold_ms if hold_ms is None else hold_ms,
            self.called,
            self.workdir,
            f"{self._counter:02d}-{kind}-{rate:g}",
            uac_ip=UAC_IP,
            recv_timeout_ms=self.plan.recv_timeout_ms,
            trace_messages=trace,
            limit=limit,
            buff_size=self.plan.buff_size,
        )

    def _callee_retrans(self) -> int:
        return sum(sipp.uas_retransmissions(self.workdir, ip) for ip in self.gateways)

    def _finish(self, uac: sipp.Uac, callee_before: int) -> sipp.UacResult:
        """``finish_uac``, and the callees' retransmissions since ``callee_before``."""
        res = sipp.finish_uac(uac)
        ended = time.monotonic()
        self._settle()
        # callees write their statistics once a second: read them after the next write
        time.sleep(max(0.0, ended + 1.1 - time.monotonic()))
        res.callee_retransmissions = max(0, self._callee_retrans() - callee_before)
        return res

    def _settle(self) -> None:
        """Wait (bounded) until the proxy's process tree is nearly idle."""
        if self.target.proc is None:
            time.sleep(0.5)
            return
        deadline = time.monotonic() + self.plan.settle_timeout
        prev = procs.cpu_seconds(self.target.pids())
        while time.monotonic() < deadline:
            time.sleep(0.5)
            cur = procs.cpu_seconds(self.target.pids())
            if procs.cpu_delta(prev, cur) < 0.05:  # < 10 % of one core over 0.5 s
                return
            prev = cur

    # --- the four measurements ------------------------------------------------------------

    def _check(self) -> bool:
        res = sipp.finish_uac(self._uac("check", 10, 20, hold_ms=200))
        self.result.check = res.summary()
        self.log(f"  {self.target.label}: check {res.summary()}")
        if res.successful != res.planned:
            self.result.error = f"check calls failed: {res.summary()}"
            return False
        return True

    def _latency(self) -> None:
        plan = self.plan
        rate = plan.latency_rate
        calls = math.ceil(rate * plan.latency_seconds)
        self._settle()
        before = procs.cpu_seconds(self.target.pids())
        res = sipp.finish_uac(self._uac("latency", rate, calls, trace=True))
        self._settle()
        after = procs.cpu_seconds(self.target.pids())
        r = self.result
        r.latency_rate = rate
        r.latency_calls = res.successful
        r.latency_failed = res.planned - res.successful
        r.p50_ms = sipp.percentile(res.invite_200_ms, 50)
        r.p99_ms = sipp.percentile(res.invite_200_ms, 99)
        r.p50_180_ms = sipp.percentile(res.invite_180_ms, 50)
        if self.target.is_proxy and res.successful:
            r.cpu_ms_per_call = procs.cpu_delta(before, after) * 1000 / res.successful
        self.log(
            f"  {self.target.label}: latency at {rate:g} cps: p50 {_fmt(r.p50_ms)} ms,"
            f" p99 {_fmt(r.p99_ms)} ms, CPU {_fmt(r.cpu_ms_per_call)} ms/call; {res.summary()}"
        )

    def _step(self, rate: float) -> Step:
        """One rate: a trial, and while it fails up to ``confirm`` more on fresh processes."""
        step = self._trial(rate)
        for _ in range(self.plan.confirm):
            if step.passed:
                break
            self.log(f"  {self.target.label}: {rate:g} cps failed: trying again on fresh processes")
            step = self._trial(rate)
        return step

    def _trial(self, rate: float) -> Step:
        plan = self.plan
        calls = max(1, math.ceil(rate * plan.step_seconds))
        if self.result.steps and not self.result.steps[-1].passed:
            self._restart()  # the failed step's calls would still be winding down
        self._settle()
        before = procs.cpu_seconds(self.target.pids())
        callee_before = self._callee_retrans()
        res = self._finish(self._uac("step", rate, calls), callee_before)
        cpu_ms: float | None = None
        if self.target.is_proxy and res.successful:
            after = procs.cpu_seconds(self.target.pids())
            cpu_ms = procs.cpu_delta(before, after) * 1000 / res.successful
        why = judge(res, rate)
        self.log(
            f"  {self.target.label}: {rate:g} cps x {plan.step_seconds:g}s"
            f" {'pass' if not why else 'FAIL (' + why + ')'}: {res.summary()}"
            + (f", CPU {_fmt(cpu_ms)} ms/call" if cpu_ms is not None else "")
        )
        step = Step(rate, not why, res, cpu_ms, why)
        self.result.steps.append(step)
        return step

    def _max_rate(self) -> None:
        """Ramp ×growth until a step fails, then bisect until the gap is within precision."""
        plan = self.plan
        best: float | None = None
        worst: float | None = None
        rate = plan.start_rate
        for _ in range(20):  # growing, or shrinking when the first step fails
            if self._step(rate).passed:
                best = rate
                if worst is not None or rate * plan.growth > plan.rate_cap:
                    break
                rate = _round_rate(rate * plan.growth)
            else:
                worst = rate
                if best is not None or rate / plan.growth < 10:
                    break
                rate = _round_rate(rate / plan.growth)
        for _ in range(12):
            if best is None or worst is None or (worst - best) / best <= plan.precision:
                break
            mid = _round_rate((best + worst) / 2)
            if mid in (best, worst):
                break
            if self._step(mid).passed:
                best = mid
            else:
                worst = mid
        self.result.max_cps = best
        self.result.lowest_failed = worst
        self.result.max_cps_capped = best is not None and worst is None
        self.log(f"  {self.target.label}: max {_fmt(best)} cps (lowest failed {_fmt(worst)})")

    def _flood(self) -> None:
        """Half the clean maximum, without then with a stranger's flood, on fresh processes."""
        plan = self.plan
        r = self.result
        if r.max_cps is None:
            return
        rate = _round_rate(r.max_cps / 2)
        calls = max(1, math.ceil(rate * plan.flood_seconds))
        fr = r.flood = FloodResult(rate, plan.flood_rate, calls)
        try:
            self._restart()
            clean, fr.cpu_clean_s, _ = self._flood_run(rate, calls, flood=False)
            fr.failed_clean = clean.planned - clean.successful
            fr.retrans_clean = clean.retransmissions
            self._restart()
            flooded, fr.cpu_flood_s, fr.flood = self._flood_run(rate, calls, flood=True)
            fr.failed_flood = flooded.planned - flooded.successful
            fr.retrans_flood = flooded.retransmissions
        except RuntimeError as exc:
            fr.error = str(exc)
        share = fr.cpu_share
        self.log(
            f"  {self.target.label}: flood {_fmt(fr.flood_rate_reached)} datagrams/s asked"
            f" {plan.flood_rate:g}, legitimate {rate:g} cps x {calls}: failed {fr.failed_clean}"
            f" clean / {fr.failed_flood} flooded; proxy CPU {_fmt(fr.cpu_clean_s)} /"
            f" {_fmt(fr.cpu_flood_s)} s, flood share"
            f" {'–' if share is None else f'{share * 100:.0f} % of a core'};"
            f" {_fmt(fr.answers)} answers to the strangers"
            + (f"; ERROR {fr.error}" if fr.error else "")
        )

    def _flood_run(
        self, rate: float, calls: int, *, flood: bool
    ) -> tuple[sipp.UacResult, float, dict[str, object]]:
        """Legitimate calls (with the flood around them): result, proxy CPU s, flood report."""
        plan = self.plan
        self._settle()
        before = procs.cpu_seconds(self.target.pids())
        sent: dict[str, object] = {}
        proc = None
        report = self.workdir / f"flood-{self._counter + 1:02d}.json"
        if flood:
            seconds = calls / rate + 2.0  # from 1 s before the first call to 1 s after
            proc = start_flood(self.target.address, plan.flood_rate, seconds, report, self.workdir)
            time.sleep(1.0)
        res = self._finish(self._uac("flood" if flood else "clean", rate, calls), 0)
        if proc is not None:
            procs.wait(proc, timeout=30)
            sent = read_flood_report(report)
            if not sent:
                raise RuntimeError(f"the flood sent nothing:\n{proc.tail()}")
            self._settle()
        after = procs.cpu_seconds(self.target.pids())
        self.log(f"  {self.target.label}: {'flooded' if flood else 'clean'} {res.summary()}")
        return res, procs.cpu_delta(before, after), sent

    def _memory_hold_ms(self, rate: float) -> int:
        ramp = self.plan.concurrent / rate
        return int((ramp + self.plan.hold_margin_s) * 1000)

    def _memory(self) -> None:
        plan = self.plan
        r = self.result
        rate = plan.concurrent_rate
        if r.max_cps is not None:
            rate = min(rate, _round_rate(r.max_cps / 2))
        r.concurrent, r.concurrent_rate = plan.concurrent, rate
        self._restart()
        warm = sipp.finish_uac(self._uac("warm", 10, 20, hold_ms=200))
        self._settle()
        pids = self.target.pids()
        idle = procs.memory(pids)
        r.idle_rss_mib, r.idle_pss_mib, r.processes = idle.rss_mib, idle.pss_mib, idle.processes
        ramp = plan.concurrent / rate
        uac = self._uac(
            "hold",
            rate,
            plan.concurrent,
            hold_ms=self._memory_hold_ms(rate),
            limit=plan.concurrent + 10,
        )
        # All N are open from the end of the ramp until the first call hangs up.
        deadline = time.monotonic() + ramp + plan.hold_margin_s - 1
        created, open_calls = 0, 0
        while time.monotonic() < deadline and uac.proc.alive():
            time.sleep(0.25)
            created, open_calls = uac.held()
            if created >= plan.concurrent and open_calls >= plan.concurrent:
                time.sleep(1.0)  # let the last 200/ACK exchanges finish
                break
        held = procs.memory(self.target.pids())
        created, open_calls = uac.held()
        # The reading is taken: hang up by stopping the caller rather than waiting another
        # ramp for every BYE (the proxy is stopped next; the callees at the end of the phase).
        procs.stop(uac.proc)
        r.concurrent_reached = open_calls
        r.held_rss_mib, r.held_pss_mib = held.rss_mib, held.pss_mib
        self.log(
            f"  {self.target.label}: memory idle RSS {idle.rss_mib:.1f} MiB / PSS"
            f" {idle.pss_mib:.1f} MiB; with {open_calls} calls open ({created} created at"
            f" {rate:g} cps) RSS {held.rss_mib:.1f} MiB / PSS {held.pss_mib:.1f} MiB"
            f" (warm-up {warm.summary()})"
        )


def start_flood(
    target: tuple[str, int], rate: float, seconds: float, report: Path, workdir: Path
) -> procs.Proc:
    """``python -m pksbench.flood`` in its own process (its CPU is not the harness's)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(BENCH), env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-m", "pksbench.flood", f"{target[0]}:{target[1]}"]
    argv += ["--rate", f"{rate:g}", "--seconds", f"{seconds:.1f}", "--report", str(report)]
    return procs.start("flood", argv, workdir, env=env)


def read_flood_report(report: Path) -> dict[str, object]:
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def start_callees(
    gateways: tuple[str, ...], workdir: Path, buff_size: int | None = sipp.BUFF_SIZE
) -> list[procs.Proc]:
    """One SIPp callee per gateway address, up and bound (bounded wait)."""
    # A callee waits for the caller's BYE longer than any hold of the memory phase.
    started = [
        sipp.start_uas(ip, 5060, workdir, recv_timeout_ms=600_000, buff_size=buff_size)
        for ip in gateways
    ]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(procs.udp_bound(ip, 5060) for ip in gateways):
            return started
        if not all(p.alive() for p in started):
            break
        time.sleep(0.05)
    tails = "\n".join(p.tail(5) for p in started)
    for proc in started:
        procs.stop(proc)
    raise RuntimeError(f"SIPp callees did not start:\n{tails}")


def _round_rate(rate: float) -> float:
    """Round to 3 significant figures (fine enough for a bisection to 3 %)."""
    if rate <= 0:
        return rate
    digits = 2 - math.floor(math.log10(rate))
    return float(round(rate, digits))


def _pct(ratio: float) -> str:
    pct = ratio * 100
    return f"{pct:.2g} %" if pct < 10 else f"{pct:.0f} %"


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"
