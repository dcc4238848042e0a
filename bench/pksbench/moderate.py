"""CPU per call at the moderate rate, read several times per proxy configuration.

Scenario 1 reads it once per configuration, during its latency phase (200 calls/s for 30 s,
SIPp writing its message trace). On a shared VM one such reading moves by 10 % or more from
one run to the next, as much as the difference the pks / Kamailio ratio is meant to show. So
after scenario 1 every proxy configuration runs that phase again ``EXTRA`` more times, on
fresh processes, the configurations taken in turn (Kamailio 1, pks 1, Kamailio N, pks N,
then again): a drift of the machine's speed weighs on all of them alike. The tables show the
median of each configuration's readings (the latency phase's first one included); the report
lists every reading.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from pathlib import Path

from pksbench import tables
from pksbench.measure import Plan, Runner, TargetResult
from pksbench.targets import Target

EXTRA = 2  # readings after scenario 1's own, in a full run (none in a quick run)


def run(
    targets: Sequence[Target],
    plan: Plan,
    db: Path,
    workdir: Path,
    log: Callable[[str], None],
) -> dict[str, list[float]]:
    """The extra readings (ms per call), by target name; a failed reading is left out."""
    found: dict[str, list[float]] = {}
    extra = 0 if plan.quick else EXTRA
    proxies = [t for t in targets if t.is_proxy]
    if extra and proxies:
        log(f"CPU per call at {plan.latency_rate:g} calls/s: {extra} more readings per proxy")
    for _ in range(extra):
        for target in proxies:
            runner = Runner(target, plan, db, tables.CALLED, workdir / "moderate", log)
            ms = runner.moderate_cpu()
            if ms is not None and not runner.result.latency_failed:
                found.setdefault(target.name, []).append(ms)
    return found


def apply(results: Sequence[TargetResult], extra: dict[str, list[float]]) -> None:
    """Each result's CPU per call at the moderate rate becomes the median of its readings."""
    for r in results:
        more = extra.get(r.name)
        if r.cpu_ms_per_call is None or not more:
            continue
        r.cpu_samples_ms = [r.cpu_ms_per_call, *more]
        r.cpu_ms_per_call = statistics.median(r.cpu_samples_ms)


def notes(results: Sequence[TargetResult]) -> list[str]:
    """One note listing every reading, when there were several."""
    each = [
        f"{r.label} " + ", ".join(f"{ms * 1000:.0f}" for ms in r.cpu_samples_ms)
        for r in results
        if len(r.cpu_samples_ms) > 1
    ]
    if not each:
        return []
    rate = next((r.latency_rate for r in results if r.latency_rate), None)
    return [
        f"CPU per call at {rate:g} calls/s (µs), each reading (the latency phase's, then one"
        " per round on fresh processes, the configurations in turn; the tables show the"
        " median): " + "; ".join(each)
    ]
