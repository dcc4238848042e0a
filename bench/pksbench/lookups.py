"""Scenario 2: routing-lookup cost as the tables grow (dialplan 10 / 10 k / 1 M, address 100 k).

For each table size:

* **pks, functions** — ``pksbench.lookup_pks`` in its own process (time-limited): snapshot
  build time and memory, µs per lookup / authorize call;
* **Kamailio, in the proxy** — Kamailio loads the same SQLite file with ``WITH_LOOKUP_TIMERS``:
  the benchmark module times ``allow_source_address_group()`` and the ``dp_match`` chain of
  every call, read back from its log. A few probe calls first size the rate so that the
  workers stay far from saturation (a linear dialplan scan of 1 M rules takes tens of ms);
* **both, whole call** — start-up time (tables loaded), idle memory, and proxy CPU per call at
  that same low rate, with called numbers spread over the prefix rules.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pksbench import procs, sipp
from pksbench.measure import start_callees
from pksbench.tables import (
    GATEWAY_IPS,
    UAC_IP,
    Sized,
    called_numbers,
    create_db,
    sized_tables,
    write_numbers,
)
from pksbench.targets import Kamailio, Pks, Target, with_accel

BENCHTIME = re.compile(r"BENCHTIME auth=(\d+) dp=(\d+) nop=(\d+)")
PACKAGE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class ProxyAtSize:
    """One proxy loaded with one table size, driven by SIPp at a low rate."""

    start_seconds: float | None = None
    idle_rss_mib: float | None = None
    idle_pss_mib: float | None = None
    rate: float | None = None
    calls: int | None = None
    failed: int | None = None
    cpu_ms_per_call: float | None = None
    auth_us: float | None = None
    dialplan_us: float | None = None
    dialplan_p99_us: float | None = None
    timer_us: float | None = None
    error: str | None = None


@dataclass
class SizeResult:
    dialplan: int
    address: int
    label: str
    pks_functions: dict[str, object] | None = None
    pks_functions_error: str | None = None
    kamailio: ProxyAtSize = field(default_factory=ProxyAtSize)
    pks: ProxyAtSize = field(default_factory=ProxyAtSize)

    def as_dict(self) -> dict[str, object]:
        return {
            "dialplan": self.dialplan,
            "address": self.address,
            "label": self.label,
            "pks_functions": self.pks_functions,
            "pks_functions_error": self.pks_functions_error,
            "kamailio": vars(self.kamailio),
            "pks": vars(self.pks),
        }


def _g(value: object) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def sizes(quick: bool) -> list[Sized]:
    if quick:
        return [Sized(10, 0), Sized(10_000, 0), Sized(10, 100_000)]
    return [Sized(10, 0), Sized(10_000, 0), Sized(1_000_000, 0), Sized(10, 100_000)]


def run_pks_functions(
    size: Sized, workdir: Path, timeout: float, quick: bool, accel: Path | None
) -> dict[str, object]:
    out = workdir / f"pks-functions-{size.dialplan}-{size.address}.json"
    env = with_accel(dict(os.environ), accel)  # the compiled lookup functions, if built
    argv = [sys.executable, "-m", "pksbench.lookup_pks", "--dialplan", str(size.dialplan)]
    argv += ["--address", str(size.address), "--out", str(out)]
    if quick:
        argv.append("--quick")
    proc = procs.start(
        f"pks-functions-{size.dialplan}-{size.address}", argv, workdir, env=env, cwd=PACKAGE_DIR
    )
    code = procs.wait(proc, timeout)
    if code is None:
        raise RuntimeError(f"no result within {timeout:.0f}s")
    if code != 0:
        raise RuntimeError(f"exit {code}: {proc.tail(8)}")
    data: dict[str, object] = json.loads(out.read_text())
    return data


class SizeRunner:
    """Runs every measurement for the table sizes of scenario 2."""

    def __init__(
        self,
        workdir: Path,
        log: Callable[[str], None],
        quick: bool,
        pks_ok: bool,
        cores: int,
        accel: Path | None,
    ) -> None:
        self.workdir = workdir / "lookups"
        self.accel = accel  # pks's compiled core, if built
        self.log = log
        self.quick = quick
        self.pks_ok = pks_ok
        self.cores = cores
        self.admin_port = 0
        self._counter = 0

    def run(self, admin_port: int) -> list[SizeResult]:
        self.admin_port = admin_port
        self.workdir.mkdir(parents=True, exist_ok=True)
        results = []
        uas = start_callees(GATEWAY_IPS, self.workdir)
        try:
            for size in sizes(self.quick):
                results.append(self._size(size))
        finally:
            for proc in uas:
                procs.stop(proc)
        return results

    def _size(self, size: Sized) -> SizeResult:
        r = SizeResult(size.dialplan, size.address, size.label)
        t0 = time.monotonic()
        self.log(f"  {size.label}:")
        if self.pks_ok:
            try:
                r.pks_functions = run_pks_functions(
                    size, self.workdir, timeout=120 if self.quick else 400, quick=self.quick,
                    accel=self.accel,
                )  # fmt: skip
                f = r.pks_functions
                self.log(
                    f"    pks functions: build {_g(f['build_seconds'])} s, customer call"
                    f" {_g(f['customer_call_us'])} µs, authorize"
                    f" {_g(f['authorize_caller_us'])} µs, wrong: {f['wrong'] or 'none'}"
                )
            except RuntimeError as exc:
                r.pks_functions_error = str(exc)
                self.log(f"    pks functions: ERROR {exc}")
        stem = f"{size.dialplan}-{size.address}"
        db = create_db(self.workdir / f"sized-{stem}.db", sized_tables(size))
        numbers = called_numbers(size, 1000)
        kam = Kamailio(
            self.cores,
            shm_mb=1024 + 2 * size.dialplan // 1000 + size.address // 1000,
            pkg_mb=32 + (size.dialplan + size.address) // 1000,
        )
        self._proxy(kam, r.kamailio, db, numbers, size)
        if self.pks_ok:
            pks = Pks(self.admin_port, 1, self.accel)
            self._proxy(pks, r.pks, db, numbers, size, rate=r.kamailio.rate)
        self.log(f"    ({time.monotonic() - t0:.0f}s)")
        return r

    def _uac(self, target: Target, rate: float, calls: int, numbers: Path) -> sipp.UacResult:
        self._counter += 1
        return sipp.finish_uac(
            sipp.start_uac(
                target.address,
                rate,
                calls,
                100,
                numbers,
                self.workdir,
                f"{self._counter:02d}-{target.name}-{rate:g}",
                uac_ip=UAC_IP,
                recv_timeout_ms=8000,
            )
        )

    def _proxy(
        self,
        target: Target,
        out: ProxyAtSize,
        db: Path,
        called: list[str],
        size: Sized,
        rate: float | None = None,
    ) -> None:
        timers = isinstance(target, Kamailio)
        stem = f"numbers-{size.dialplan}-{size.address}-{target.name}.csv"
        numbers = write_numbers(self.workdir / stem, called, target.destinations)
        try:
            target.start(
                db,
                self.workdir,
                timeout=180 if self.quick else 400,
                extra=("WITH_LOOKUP_TIMERS",) if timers else (),
            )
            out.start_seconds = target.start_seconds
            time.sleep(0.5)
            idle = procs.memory(target.pids())
            out.idle_rss_mib, out.idle_pss_mib = idle.rss_mib, idle.pss_mib
            if rate is None:
                # Probe: 4 calls at 2 cps, then aim at ~20 % of the workers' capacity.
                probe = self._uac(target, 2, 4, numbers)
                per_call_s = self._timers(target, 0)[1] / 1e6 if timers else 0.0
                rate = max(2.0, min(50.0, 0.2 * self.cores / max(per_call_s, 1e-3)))
                rate = float(math.floor(rate))
                self.log(f"    {target.label}: probe {probe.summary()}, rate {rate:g} cps")
            seen = len(self._timer_lines(target)) if timers else 0
            calls = int(max(20, min(300 if not self.quick else 100, rate * 6)))
            before = procs.cpu_seconds(target.pids())
            res = self._uac(target, rate, calls, numbers)
            time.sleep(0.5)
            after = procs.cpu_seconds(target.pids())
            out.rate, out.calls, out.failed = rate, res.planned, res.planned - res.successful
            if res.successful:
                out.cpu_ms_per_call = procs.cpu_delta(before, after) * 1000 / res.successful
            if timers:
                auth, dp, nop, dp99 = self._timers(target, seen)
                out.auth_us, out.dialplan_us, out.dialplan_p99_us = auth, dp, dp99
                out.timer_us = nop
            self.log(
                f"    {target.label}: start {out.start_seconds:.1f}s, PSS {idle.pss_mib:.0f} MiB,"
                f" {res.summary()}, CPU {out.cpu_ms_per_call or 0:.3f} ms/call"
                + (f", auth {out.auth_us} µs, dialplan {out.dialplan_us} µs" if timers else "")
            )
        except RuntimeError as exc:
            out.error = str(exc).splitlines()[0] if str(exc) else repr(exc)
            self.log(f"    {target.label}: ERROR {exc}")
        finally:
            target.stop()

    def _timer_lines(self, target: Target) -> list[tuple[int, int, int]]:
        text = target.proc.stderr_text() if target.proc is not None else ""
        return [(int(a), int(d), int(n)) for a, d, n in BENCHTIME.findall(text)]

    def _timers(self, target: Target, skip: int) -> tuple[float, float, float, float]:
        """Medians of authorize, dialplan, empty-timer µs and dialplan p99, after ``skip``."""
        lines = self._timer_lines(target)[skip:]
        if not lines:
            return 0.0, 0.0, 0.0, 0.0
        dps = [float(d) for _, d, _ in lines]
        return (
            float(statistics.median(a for a, _, _ in lines)),
            float(statistics.median(dps)),
            float(statistics.median(n for _, _, n in lines)),
            sipp.percentile(dps, 99) or 0.0,
        )
