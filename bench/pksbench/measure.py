"""Scenario 1: the same SIPp load through each target, one target at a time.

Per target, with both callees running for the whole phase:

1. **check** — a few calls at a low rate must all succeed (and, through a proxy, reach both
   gateways); otherwise the target is reported as broken and skipped.
2. **latency and CPU** — a fixed moderate rate for a fixed time: INVITE→200 p50/p99 from
   SIPp's message trace, proxy CPU seconds (all processes of its tree) per successful call.
3. **maximum rate** — steps of ``step_seconds`` each: the rate grows ``growth`` times from
   ``start_rate`` until a step fails, then bisects ``refine`` times. A step passes when fewer
   than 0.1 % of its calls failed and SIPp kept the pace (all calls created within 25 % of
   the step time). A step that follows a failed one starts on fresh processes (proxy and
   callees restarted): it measures its own rate, not the aftermath of the overload before
   (the failed calls' transactions and retransmissions go on for up to 32 s, Timer B/H).
   A failed step is tried again ``confirm`` times (on fresh processes) before the rate counts
   as failed: on a shared machine one 10-second trial near saturation passes or fails on a
   passing hiccup, and the rate a target sustains is the one it can pass, for every target
   alike.
   The proxy's CPU seconds (all processes) from the start of a step until it is idle again,
   per successful call, are kept with each step: the CPU a call costs under load, next to
   step 2's figure at a moderate rate. Between steps the proxy is left to go idle (bounded).
4. **memory** — the proxy and the callees are restarted, its idle memory read, then N calls
   are opened at ``concurrent_rate`` and held; RSS and PSS (summed over its processes) are
   read while all N are open, then the caller is stopped (the proxy is stopped right after).

Every wait is bounded; every process started here is stopped at the end of its phase.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pksbench import procs, sipp
from pksbench.tables import UAC_IP, write_numbers
from pksbench.targets import Target

MAX_FAILED = 0.001


@dataclass(frozen=True, slots=True)
class Plan:
    """How long and how hard to push; ``quick`` trades precision for a short run."""

    quick: bool
    step_seconds: float
    start_rate: float
    growth: float
    rate_cap: float
    refine: int
    confirm: int
    hold_ms: int
    latency_rate: float
    latency_seconds: float
    concurrent: int
    concurrent_rate: float
    hold_margin_s: float
    recv_timeout_ms: int = 4000
    ready_timeout: float = 60.0
    settle_timeout: float = 10.0


def make_plan(quick: bool, concurrent: int | None = None) -> Plan:
    if quick:
        return Plan(
            quick=True,
            step_seconds=3,
            start_rate=250,
            growth=3,
            rate_cap=8000,
            refine=1,
            confirm=0,
            hold_ms=500,
            latency_rate=100,
            latency_seconds=6,
            concurrent=concurrent or 1000,
            concurrent_rate=250,
            hold_margin_s=5,
        )
    return Plan(
        quick=False,
        step_seconds=10,
        start_rate=100,
        growth=2,
        rate_cap=16000,
        refine=4,
        confirm=1,
        hold_ms=1000,
        latency_rate=100,
        latency_seconds=30,
        concurrent=concurrent or 10_000,
        concurrent_rate=500,
        hold_margin_s=8,
    )


@dataclass
class Step:
    rate: float
    passed: bool
    result: sipp.UacResult
    cpu_ms_per_call: float | None = None  # proxies only: until idle again, per successful call

    def as_dict(self) -> dict[str, object]:
        r = self.result
        return {
            "rate": self.rate,
            "passed": self.passed,
            "cpu_ms_per_call": self.cpu_ms_per_call,
            "planned": r.planned,
            "successful": r.successful,
            "failed": r.failed,
            "failed_ratio": round(r.failed_ratio, 6),
            "retransmissions": r.retransmissions,
            "failure_kinds": {k: v for k, v in r.failure_kinds.items() if v},
            "creation_seconds": r.creation_seconds,
            "exit_code": r.exit_code,
            "rtd_repartition_ms": r.rtd_repartition,
            "unexpected": r.unexpected,
        }


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
    steps: list[Step] = field(default_factory=list)
    latency_rate: float | None = None
    latency_calls: int | None = None
    latency_failed: int | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    p50_180_ms: float | None = None
    cpu_ms_per_call: float | None = None
    concurrent: int | None = None
    concurrent_reached: int | None = None
    concurrent_rate: float | None = None
    idle_rss_mib: float | None = None
    idle_pss_mib: float | None = None
    held_rss_mib: float | None = None
    held_pss_mib: float | None = None
    processes: int | None = None

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

    def step_cpu_ms(self, rate: float) -> float | None:
        """Proxy CPU per call in the passed step at ``rate`` (None: no such step)."""
        return next((s.cpu_ms_per_call for s in self.steps if s.rate == rate and s.passed), None)

    def as_dict(self) -> dict[str, object]:
        data = {k: v for k, v in vars(self).items() if k != "steps"}
        data["steps"] = [s.as_dict() for s in self.steps]
        data["rss_kib_per_call"] = self.rss_kib_per_call
        data["pss_kib_per_call"] = self.pss_kib_per_call
        return data


Log = Callable[[str], None]


class Runner:
    """Drives one target through the four measurements."""

    def __init__(
        self, target: Target, plan: Plan, db: Path, numbers: list[str], workdir: Path, log: Log
    ) -> None:
        self.target = target
        self.plan = plan
        self.db = db
        self.workdir = workdir / target.name
        self.numbers = write_numbers(self.workdir / "numbers.csv", numbers, target.destinations)
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
                if self.target.is_proxy:
                    self._memory()
        except RuntimeError as exc:
            self.result.error = str(exc)
            self.log(f"  {self.target.label}: ERROR {exc}")
        finally:
            self.target.stop()
            self._gateway_counts()
            for proc in self._uas:
                procs.stop(proc)
            self._uas.clear()
        self.log(f"  {self.target.label}: done in {time.monotonic() - t0:.0f}s")
        return self.result

    def _start_callees(self) -> None:
        self._uas = start_callees(self.target.gateways, self.workdir)

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
        for ip in self.target.gateways:
            counts[ip] = counts.get(ip, 0) + sipp.uas_counts(self.workdir, ip)[0]

    def _restart(self) -> None:
        """Stop the proxy and the callees and start them again (nothing left of before)."""
        self.target.stop()
        self._gateway_counts()
        for proc in self._uas:
            procs.stop(proc)
        self._uas.clear()
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
            self.numbers,
            self.workdir,
            f"{self._counter:02d}-{kind}-{rate:g}",
            uac_ip=UAC_IP,
            recv_timeout_ms=self.plan.recv_timeout_ms,
            trace_messages=trace,
            limit=limit,
        )

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
        res = sipp.finish_uac(self._uac("step", rate, calls))
        cpu_ms: float | None = None
        if self.target.is_proxy and res.successful:
            self._settle()
            after = procs.cpu_seconds(self.target.pids())
            cpu_ms = procs.cpu_delta(before, after) * 1000 / res.successful
        kept_pace = (
            res.creation_seconds is not None
            and res.creation_seconds <= plan.step_seconds * 1.25 + 1
        )
        passed = res.failed_ratio < MAX_FAILED and kept_pace and res.exit_code in (0, 1)
        self.log(
            f"  {self.target.label}: {rate:g} cps x {plan.step_seconds:g}s"
            f" {'pass' if passed else 'FAIL'}: {res.summary()}"
            + (f", CPU {_fmt(cpu_ms)} ms/call" if cpu_ms is not None else "")
        )
        step = Step(rate, passed, res, cpu_ms)
        self.result.steps.append(step)
        return step

    def _max_rate(self) -> None:
        plan = self.plan
        best: float | None = None
        worst: float | None = None
        rate = plan.start_rate
        for _ in range(12):  # growing, or shrinking when the first step fails
            if self._step(rate).passed:
                best = rate
                if worst is not None or rate * plan.growth > plan.rate_cap:
                    break
                rate *= plan.growth
            else:
                worst = rate
                if best is not None or rate / plan.growth < 10:
                    break
                rate = _round_rate(rate / plan.growth)
        for _ in range(plan.refine if best is not None and worst is not None else 0):
            assert best is not None and worst is not None
            mid = _round_rate((best + worst) / 2)
            if mid in (best, worst):
                break
            if self._step(mid).passed:
                best = mid
            else:
                worst = mid
        self.result.max_cps = best
        self.result.max_cps_capped = best is not None and worst is None
        self.log(f"  {self.target.label}: max {_fmt(best)} cps")

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


def start_callees(gateways: tuple[str, ...], workdir: Path) -> list[procs.Proc]:
    """One SIPp callee per gateway address, up and bound (bounded wait)."""
    # A callee waits for the caller's BYE longer than any hold of the memory phase.
    started = [sipp.start_uas(ip, 5060, workdir, recv_timeout_ms=600_000) for ip in gateways]
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
    """Round to 2 significant figures (rates are reported, not tuned to the unit)."""
    if rate <= 0:
        return rate
    digits = 1 - math.floor(math.log10(rate))
    return float(round(rate, digits))


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"
