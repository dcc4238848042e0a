"""Scenario 5: what N pks workers route on N free cores, against one process.

On the benchmark machine the SIPp caller and callee share the cores with the proxy, so N
workers reach about the maximum of one process (scenario 1), and at the same total rate each
worker carries 1/N of the traffic: it finds fewer datagrams per wake-up and spends more CPU per
call. That is the price of a machine with no free core, not of the workers: on N free cores
each worker would carry as much as one process does. So this scenario compares one process at
a rate R with N workers at N × R, the same load per process, on fresh processes, the two
interleaved ``ROUNDS`` times (``ROUNDS_QUICK`` in a quick run), each for one rate step of the
plan (the same rules as scenario 1's steps). CPU per call counts every process of the instance
(the supervisor too), from the start of the step until the proxy is idle again.
N × (one process's median) / (N workers' median) is what N workers route on N free cores,
× one process: the proxy's cores alone, as the issue of the benchmark asks.

R is ``SHARE`` of one process's clean maximum in the same run, lowered so that N × R stays
within ``ROOM`` of the N workers' maximum (no step near a failure). A quarter: at N × R the N
workers and the SIPp caller and callee still leave part of the machine idle, so the workers
do not wait for a core (the condition the figure stands for); at 40 % (the first version)
two workers and SIPp took most of the two cores and the readings spread by a third.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pksbench import tables
from pksbench.measure import Plan, Runner, TargetResult
from pksbench.targets import Pks, Target

ROUNDS = 5
ROUNDS_QUICK = 1
SHARE = 0.25
ROOM = 0.8


@dataclass
class ScalingResult:
    """One process at ``rate`` and ``workers`` workers at ``workers`` × ``rate``."""

    label: str
    workers: int
    rate: float
    one_us: list[float] = field(default_factory=list)  # CPU per call, one process, each round
    many_us: list[float] = field(default_factory=list)  # the same, N workers
    failed: list[str] = field(default_factory=list)  # steps that did not pass, and why

    @property
    def ratio(self) -> float | None:
        """What the workers route on as many free cores, × one process."""
        if not self.one_us or not self.many_us:
            return None
        return self.workers * statistics.median(self.one_us) / statistics.median(self.many_us)

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "workers": self.workers,
            "rate": self.rate,
            "one_us": self.one_us,
            "many_us": self.many_us,
            "failed": self.failed,
            "ratio": self.ratio,
        }


def per_process_rate(one_max: float, workers: int, many_max: float) -> float:
    """R: ``SHARE`` of one process's maximum, at most ``ROOM`` of the workers' maximum / N;
    rounded down to 10 calls/s."""
    rate = min(SHARE * one_max, ROOM * many_max / workers)
    return max(10.0, rate // 10 * 10)


def _median_max(results: Sequence[TargetResult], name: str) -> float | None:
    found = [r.max_cps for r in results if r.name == name and r.max_cps is not None]
    return statistics.median_low(found) if found else None


def run(
    targets: Sequence[Target],
    results: Sequence[TargetResult],
    plan: Plan,
    db: Path,
    workdir: Path,
    log: Callable[[str], None],
) -> list[ScalingResult]:
    """Every pks configuration with workers beside the one-process one of the same core."""
    out: list[ScalingResult] = []
    pks = [t for t in targets if isinstance(t, Pks) and not t.cdr and not t.settings]
    for many in pks:
        one = next((t for t in pks if t.workers == 1 and t.accel == many.accel), None)
        if many.workers < 2 or one is None:
            continue
        one_max, many_max = _median_max(results, one.name), _median_max(results, many.name)
        if one_max is None or many_max is None:
            continue
        rate = per_process_rate(one_max, many.workers, many_max)
        found = ScalingResult(many.label, many.workers, rate)
        rounds = ROUNDS_QUICK if plan.quick else ROUNDS
        log(f"scenario 5: {one.label} at {rate:g} calls/s, {many.label} at"
            f" {many.workers * rate:g}, {rounds} round(s)")  # fmt: skip
        for n in range(rounds):
            for target, at, into in ((one, rate, found.one_us), (many, many.workers * rate,
                                                                  found.many_us)):  # fmt: skip
                runner = Runner(target, plan, db, tables.CALLED, workdir / "scaling", log)
                step = runner.cpu_at(at)
                if step is None:
                    found.failed.append(f"{target.label}, round {n + 1}: {runner.result.error}")
                elif not step.passed or step.cpu_ms_per_call is None:
                    found.failed.append(f"{target.label} at {at:g}, round {n + 1}: {step.why}")
                else:
                    into.append(step.cpu_ms_per_call * 1000)
        out.append(found)
    return out


def table(found: Sequence[ScalingResult]) -> list[str]:
    """The report's scenario 5 section (empty when not measured)."""
    if not found:
        return []
    lines = [
        "| configuration | one process at R: CPU per call (µs), each round | N workers at N × R"
        " | on N free cores, × one process |",
        "|---|---|---|---|",
    ]
    for s in found:
        one = ", ".join(f"{v:.0f}" for v in s.one_us) or "–"
        many = ", ".join(f"{v:.0f}" for v in s.many_us) or "–"
        ratio = "–" if s.ratio is None else f"{s.ratio:.2f}×"
        lines.append(
            f"| {s.label}, R = {s.rate:g} calls/s | {one} | {many}"
            f" (at {s.workers * s.rate:g} calls/s) | {ratio} |"
        )
    lines += [
        "",
        "One process at R and N workers at N × R: the same load per process, on fresh"
        " processes, interleaved; the ratio is N × the medians' quotient (scenario 5,"
        " `bench/pksbench/scaling.py`). At the same total rate, as in scenario 1, each worker"
        " carries 1/N of the traffic and spends more per call: the machine has no free core.",
    ]
    for s in found:
        lines += [f"- not counted: {why}" for why in s.failed]
    return lines
