"""``python -m pksbench [--quick]``: the whole benchmark in one run (see ``bench/README.md``).

Order: checks (tools, loopback addresses free) → scenario 1 for SIPp direct, Kamailio, pks →
scenario 2 (table sizes) → report. Scratch files (databases, logs, SIPp traces) go to
``bench/results/tmp/`` (emptied at start, kept after the run for inspection). Every process
started is stopped on exit, on error and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import FrameType

from pksbench import lookups, procs, report, tables
from pksbench.measure import Runner, TargetResult, make_plan
from pksbench.targets import Direct, Kamailio, Pks, Target, free_tcp_port, pks_available

BENCH = Path(__file__).resolve().parent.parent
RESULTS = BENCH / "results"
ADDRESSES = (tables.UAC_IP, *tables.GATEWAY_IPS, tables.PKS_IP, tables.KAMAILIO_IP)

_t0 = time.monotonic()


def log(text: str) -> None:
    print(f"[{time.monotonic() - _t0:6.0f}s] {text}", flush=True)


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return next((line.strip() for line in text if line.strip()), "?")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _sysctl(name: str) -> str:
    try:
        return Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()
    except OSError:
        return "?"


def machine() -> dict[str, str]:
    git = _first_line(["git", "-C", str(BENCH.parent), "describe", "--always", "--dirty"])
    pks_version = "not importable"
    try:
        import pks

        pks_version = f"{pks.__version__} (git {git})"
    except ImportError:
        pass
    return {
        "CPU": f"{_cpu_model()}, {os.cpu_count()} logical cores",
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "pks": pks_version,
        "Kamailio": _first_line(["kamailio", "-v"]),
        "SIPp": _first_line(["sipp", "-v"]),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "UDP receive buffer default / max": (
            f"{_sysctl('net.core.rmem_default')} / {_sysctl('net.core.rmem_max')} bytes"
        ),
    }


def preflight() -> None:
    missing = [tool for tool in ("sipp", "kamailio") if shutil.which(tool) is None]
    missing += [
        str(tables.SCHEMA_DIR / f"{n}-create.sql")
        for n in tables.SCHEMA_FILES
        if not (tables.SCHEMA_DIR / f"{n}-create.sql").exists()
    ]
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)} — run scripts/bench, which installs them")
    busy = [ip for ip in ADDRESSES if procs.udp_bound(ip, tables.SIP_PORT)]
    if busy:
        raise SystemExit(
            "UDP port 5060 already in use on " + ", ".join(busy) + " (another benchmark running?)"
        )


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description="pks vs Kamailio 5.6 benchmark (SIPp load)."
    )
    parser.add_argument("--quick", action="store_true", help="short run (about 4 minutes)")
    parser.add_argument(
        "--concurrent", type=int, help="calls held open for the memory reading (10000; quick 1000)"
    )
    parser.add_argument(
        "--targets",
        default="direct,kamailio,pks",
        help="comma list among direct,kamailio,pks (default: all)",
    )
    parser.add_argument(
        "--pks-workers",
        default="1,auto",
        help="comma list of PKS_WORKERS values, each measured in scenario 1 (1,auto: one"
        " process, then one worker per core as Kamailio's UDP workers; 'auto' is skipped"
        " on a 1-core machine)",
    )
    parser.add_argument(
        "--pks-core",
        choices=("compiled", "pure", "both"),
        default="compiled",
        help="pks's core compiled by mypyc (pks.accel, the default), pure Python, or both",
    )
    parser.add_argument("--no-lookups", action="store_true", help="skip scenario 2")
    parser.add_argument("--no-calls", action="store_true", help="skip scenario 1")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, _on_signal)
    plan = make_plan(args.quick, args.concurrent)
    mode = "quick" if args.quick else "full"
    workdir = RESULTS / "tmp"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    preflight()

    notes: list[str] = []
    why_not = pks_available()
    if why_not is not None:
        notes.append(f"pks not measured: {why_not}")
        log(f"pks not measured: {why_not}")
    cores = os.cpu_count() or 1
    admin_port = free_tcp_port()
    # both scenarios measure pks with its compiled core (unless --pks-core pure)
    accel = build_accel(notes) if why_not is None and args.pks_core != "pure" else None
    targets = make_targets(args, why_not is None, cores, admin_port, accel)

    meta: dict[str, object] = {
        "mode": mode,
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "concurrent": plan.concurrent,
        "plan": {k: getattr(plan, k) for k in plan.__dataclass_fields__},
    }
    about = machine()
    results: list[TargetResult] = []
    sizes: list[lookups.SizeResult] = []
    try:
        if not args.no_calls:
            db = tables.create_db(workdir / "bench.db", tables.bench_tables())
            log(f"scenario 1 ({mode}): {', '.join(t.label for t in targets)}; scratch {workdir}")
            for target in targets:
                log(f"{target.label}:")
                results.append(Runner(target, plan, db, [tables.CALLED], workdir, log).run())
        if not args.no_lookups:
            log("scenario 2: lookup cost as the tables grow")
            runner = lookups.SizeRunner(workdir, log, args.quick, why_not is None, cores, accel)
            sizes = runner.run(admin_port)
    except KeyboardInterrupt:
        log("interrupted: stopping everything, writing what was measured")
        notes.append("run interrupted before the end")
    finally:
        procs.stop_all()

    ceiling = next((r.max_cps for r in results if r.name == "direct"), None)
    for r in results:
        if r.name != "direct" and r.gateway_calls and min(r.gateway_calls.values()) == 0:
            notes.append(f"{r.label}: a gateway received no call — round robin not working")
        if r.name != "direct" and ceiling and r.max_cps and r.max_cps >= 0.9 * ceiling:
            notes.append(
                f"{r.label}: its maximum is at the SIPp direct ceiling — bounded by the load"
                " generator on this machine, not by the proxy."
            )
    notes += standard_notes(plan, cores)
    written = report.write(RESULTS / mode, meta, about, results, sizes, notes)
    log("written: " + ", ".join(str(p.relative_to(BENCH.parent)) for p in written))
    print()
    print((RESULTS / f"{mode}.md").read_text())
    return 0


def make_targets(
    args: argparse.Namespace, pks_ok: bool, cores: int, admin_port: int, accel: Path | None
) -> list[Target]:
    """The targets of scenario 1, in order; pks runs ``accel`` (its compiled core) if built."""
    wanted = {t.strip() for t in args.targets.split(",") if t.strip()}
    targets: list[Target] = []
    if "direct" in wanted:
        targets.append(Direct())
    if "kamailio" in wanted:
        targets.append(Kamailio(children=cores))
    if "pks" in wanted and pks_ok:
        for workers in worker_counts(args.pks_workers, cores):
            if accel is not None:
                targets.append(Pks(admin_port, workers, accel))
            if accel is None or args.pks_core == "both":
                targets.append(Pks(admin_port, workers))
    return targets


def worker_counts(spec: str, cores: int) -> list[int]:
    """``--pks-workers``: "1,auto" → [1, cores] (duplicates dropped, order kept)."""
    counts: list[int] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        n = cores if item == "auto" else int(item)
        if n < 1:
            raise SystemExit(f"--pks-workers: {item!r} is not a worker count")
        if n not in counts:
            counts.append(n)
    return counts


def build_accel(notes: list[str]) -> Path | None:
    """The compiled core (``python -m pks.accel build``) in bench/.accel, or None if it fails."""
    out = BENCH / ".accel"
    log(f"compiling pks's core with mypyc into {out.relative_to(BENCH.parent)} (about 2 min)")
    done = subprocess.run(
        [sys.executable, "-m", "pks.accel", "build", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["?"])[-1]
        notes.append(f"pks measured in pure Python: compiling its core failed ({why})")
        log(f"compiling failed, pure Python is measured: {why}")
        return None
    return out


def standard_notes(plan: object, cores: int) -> list[str]:
    from pksbench.measure import Plan

    assert isinstance(plan, Plan)
    return [
        f"Kamailio runs with {cores} UDP workers (one per core) plus its helper processes;"
        " CPU and memory are summed over every process of each proxy's tree.",
        "SIPp caller, both SIPp callees and the proxy share this machine's cores: the SIPp"
        " direct column is the ceiling the load generator itself reaches (the caller sends"
        " its calls to the two callees in turn, no proxy).",
        f"Maximum rate: steps of {plan.step_seconds:g} s, the rate ×{plan.growth:g} from"
        f" {plan.start_rate:g} calls/s then bisected {plan.refine} times; each call holds"
        f" {plan.hold_ms} ms between ACK and BYE; a call fails when a message is missing"
        f" {plan.recv_timeout_ms} ms after it was due (retransmissions included). A step"
        " after a failed one starts on freshly started proxy and callees: it measures its own"
        " rate, not the previous overload's aftermath (failed calls' transactions and"
        " retransmissions go on for up to 32 s)."
        + (
            f" A failed step is tried {plan.confirm} more time(s) on fresh processes before"
            " its rate counts as failed (every target alike; all trials are listed)."
            if plan.confirm
            else ""
        ),
        f"Latency: {plan.latency_seconds:g} s at {plan.latency_rate:g} calls/s, from SIPp's"
        " message trace (µs timestamps): first INVITE sent → first 200 received. SIPp's callee"
        " adds about 1 ms between its 180 and its 200 (its scheduler tick), in every column.",
        f"Memory: {plan.concurrent} calls opened at up to {plan.concurrent_rate:g} calls/s"
        " (half the proxy's maximum when lower) on a freshly started proxy, read while all are"
        " open. RSS counts shared pages once per process (Kamailio's shared memory appears in"
        " every worker); PSS shares them out. Kamailio keeps no per-dialog state in this"
        " configuration (no dialog module): its growth is transactions in their wait timer.",
        "Other jobs running on the machine during the run disturb the figures: compare runs"
        " made on an idle machine.",
    ]


if __name__ == "__main__":
    sys.exit(main())
