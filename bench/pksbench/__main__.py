"""``python -m pksbench [--quick]``: the whole benchmark in one run (see ``bench/README.md``).

Order: checks (tools, loopback addresses free) → scenario 1 for SIPp direct, Kamailio, pks
(scenario 3, the stranger's flood, inside it) → scenario 5 (pks workers on free cores) →
scenario 4 (a customer flooding) → scenario 2 (table sizes) → report. Scratch files
(databases, logs, SIPp traces) go to ``bench/results/tmp/`` (emptied at start, kept after the
run for inspection). Every process started is stopped on exit, on error and on Ctrl-C.
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

from pksbench import lookups, moderate, procs, report, scaling, tables
from pksbench.measure import GATEWAYS, Plan, Runner, TargetResult, make_plan
from pksbench.peerflood import PeerFloodResult, PeerFloodRunner, PeerPlan
from pksbench.targets import Direct, Kamailio, Pks, Target, free_tcp_port, pks_available

BENCH = Path(__file__).resolve().parent.parent
RESULTS = BENCH / "results"
ADDRESSES = (tables.UAC_IP, *tables.GATEWAY_IPS, tables.STEADY_IP, tables.FLOODER_IP,
             tables.PKS_IP, tables.KAMAILIO_IP)  # fmt: skip

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
        "Python": _python(),
        "pks": pks_version,
        "Kamailio": _first_line(["kamailio", "-v"]),
        "SIPp": _first_line(["sipp", "-v"]),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "UDP receive buffer default / max": (
            f"{_sysctl('net.core.rmem_default')} / {_sysctl('net.core.rmem_max')} bytes"
        ),
        "UDP send buffer default / max": (
            f"{_sysctl('net.core.wmem_default')} / {_sysctl('net.core.wmem_max')} bytes"
        ),
    }


def _python() -> str:
    """The interpreter pks runs on (the bench's own, see scripts/bench): version, path, and
    whether libpython is a shared library (an ``--enable-shared`` build, such as pyenv's) or
    linked into the executable (Debian's). Whether it was built with PGO/LTO does not show;
    the path tells which build it is."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    libpython = next(
        (line.rsplit("/", 1)[-1] for line in maps.splitlines() if "libpython" in line), None
    )
    linked = f"shared {libpython}" if libpython else "libpython linked in"
    return f"{platform.python_version()} ({os.path.realpath(sys.executable)}, {linked})"


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
    parser.add_argument(
        "--quick", action="store_true", help="short run (checks the mechanics, ranks nothing)"
    )
    parser.add_argument(
        "--concurrent", type=int, help="calls held open for the memory reading (10000; quick 1000)"
    )
    parser.add_argument(
        "--targets",
        default="direct,kamailio,pks",
        help="comma list among direct,kamailio,pks (default: all)",
    )
    parser.add_argument(
        "--kamailio-workers",
        default="1,auto",
        help="comma list of Kamailio UDP worker counts (-n), each measured in scenario 1"
        " (1,auto: one worker, then one per core)",
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
    flood = parser.add_mutually_exclusive_group()
    flood.add_argument(
        "--flood",
        action="store_true",
        help="scenario 3 in a quick run too: strangers flood each proxy while SIPp calls at"
        " half its clean maximum (always part of the full run)",
    )
    flood.add_argument("--no-flood", action="store_true", help="skip scenario 3")
    parser.add_argument(
        "--flood-rate", type=float, default=20_000, help="flood datagrams/s (20000)"
    )
    parser.add_argument(
        "--flood-seconds", type=float, help="legitimate calls' time in scenario 3 (10; quick 5)"
    )
    peer = parser.add_mutually_exclusive_group()
    peer.add_argument(
        "--peer-flood",
        action="store_true",
        help="scenario 4 in a quick run too: an authorized customer calls at 10x its max_cps"
        " while another calls steadily (always part of the full run)",
    )
    peer.add_argument("--no-peer-flood", action="store_true", help="skip scenario 4")
    parser.add_argument(
        "--peer-max-cps", type=int, default=20, help="scenario 4: the flooder's max_cps (20)"
    )
    parser.add_argument(
        "--peer-steady-rate",
        type=float,
        default=50,
        help="scenario 4: the steady customer's calls/s (50)",
    )
    parser.add_argument(
        "--peer-flood-seconds", type=float, help="scenario 4: how long both call (15; quick 5)"
    )
    parser.add_argument(
        "--pike-density",
        type=int,
        help="scenario 4: Kamailio pike's reqs_density_per_unit (default: twice the steady"
        " customer's requests per 2 s, 3 per call: 600 for 50 calls/s)",
    )
    parser.add_argument(
        "--step-seconds", type=float, help="length of a rate step (10; quick 4): small checks"
    )
    parser.add_argument("--start-rate", type=float, help="first rate step, calls/s (500)")
    parser.add_argument(
        "--rate-cap", type=float, help="highest rate step, calls/s (32000): small checks"
    )
    parser.add_argument(
        "--pks-cdr",
        default="",
        help="comma list among db,webhook,file: each pks configuration is measured again with"
        " call records on, to that sink (db: a SQLite file of its own; webhook: a receiver in"
        " this process), beside the plain figures (default: none)",
    )
    parser.add_argument(
        "--pks-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for every pks process of scenario 1 (repeatable), e.g."
        " PKS_RECV_BATCH=false to measure a feature off; named in the report",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run scenario 1's targets this many times, in turn (a, b, c, a, b, c...), and keep"
        " each target's median round by maximum calls/s, every round named in the notes: on a"
        " machine whose speed drifts, one round cannot rank figures a few percent apart (1)",
    )
    parser.add_argument("--no-lookups", action="store_true", help="skip scenario 2")
    parser.add_argument(
        "--no-scaling",
        action="store_true",
        help="skip scenario 5 (pks workers on free cores: one process at R against N workers"
        " at N x R, interleaved)",
    )
    parser.add_argument("--no-calls", action="store_true", help="skip scenario 1")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, _on_signal)
    if not 1 <= args.rounds <= 9:
        raise SystemExit("--rounds: between 1 and 9")
    if args.flood_seconds is not None and not 0 < args.flood_seconds <= 60:
        raise SystemExit("--flood-seconds: between 0 and 60")
    flooding = not args.no_flood and (args.flood or not args.quick)
    peer_plan = make_peer_plan(args)
    plan = make_plan(
        args.quick,
        args.concurrent,
        step_seconds=args.step_seconds,
        start_rate=args.start_rate,
        rate_cap=args.rate_cap,
        flood_rate=args.flood_rate if flooding else 0.0,
        flood_seconds=args.flood_seconds,
    )
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
    wants_pks = not args.no_lookups or (
        (not args.no_calls or peer_plan is not None) and "pks" in args.targets
    )
    compile_core = why_not is None and args.pks_core != "pure" and wants_pks
    accel = build_accel(notes) if compile_core else None
    receiver = None
    if "webhook" in args.pks_cdr:
        from pksbench.webhook import Receiver

        receiver = Receiver()
    targets = make_targets(args, why_not is None, cores, admin_port, accel,
                           receiver.url if receiver is not None else None)  # fmt: skip

    meta: dict[str, object] = {
        "mode": mode,
        "date": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "concurrent": plan.concurrent,
        "plan": {k: getattr(plan, k) for k in plan.__dataclass_fields__},
        "peer_plan": peer_plan_meta(peer_plan),
    }
    about = machine()
    results: list[TargetResult] = []
    sizes: list[lookups.SizeResult] = []
    peer_floods: list[PeerFloodResult] = []
    scales: list[scaling.ScalingResult] = []
    readings: dict[str, list[float]] = {}
    try:
        if not args.no_calls:
            log(f"scenario 1 ({mode}): {', '.join(t.label for t in targets)}; scratch {workdir}")
            readings, scales = run_calls(args, targets, plan, workdir, results)
        if peer_plan is not None:
            peer_floods = run_peer_floods(peer_plan, targets, workdir)
        if not args.no_lookups:
            log("scenario 2: lookup cost as the tables grow")
            runner = lookups.SizeRunner(workdir, log, args.quick, why_not is None, cores, accel)
            sizes = runner.run(admin_port)
    except KeyboardInterrupt:
        log("interrupted: stopping everything, writing what was measured")
        notes.append("run interrupted before the end")
    finally:
        procs.stop_all()
        if receiver is not None:
            notes.append(f"webhook receiver: {receiver.records} call records taken")
            receiver.close()

    results, round_notes = report.median_rounds(results)
    moderate.apply(results, readings)
    notes += round_notes + moderate.notes(results)
    for r in results:
        if r.name != "direct" and r.gateway_calls and min(r.gateway_calls.values()) == 0:
            notes.append(f"{r.label}: the callee received no call")
    notes += report.headroom_notes(results)
    notes += standard_notes(plan, cores)
    notes += report.peer_flood_notes(peer_plan, peer_floods)
    written = report.write(RESULTS / mode, meta, about, results, sizes, notes, peer_floods, scales)
    log("written: " + ", ".join(str(p.relative_to(BENCH.parent)) for p in written))
    print()
    print((RESULTS / f"{mode}.md").read_text())
    return 0


def run_calls(
    args: argparse.Namespace,
    targets: list[Target],
    plan: Plan,
    workdir: Path,
    out: list[TargetResult],
) -> tuple[dict[str, list[float]], list[scaling.ScalingResult]]:
    """Scenario 1 (``out`` grows as targets finish), more readings of its CPU per call at
    the moderate rate, then scenario 5 on its maxima."""
    db = tables.create_db(workdir / "bench.db", tables.bench_tables(GATEWAYS))
    run_targets(targets, args.rounds, plan, db, workdir, out)
    readings = moderate.run(targets, plan, db, workdir, log)
    if args.no_scaling:
        return readings, []
    return readings, scaling.run(targets, out, plan, db, workdir, log)


def run_targets(
    targets: list[Target], rounds: int, plan: Plan, db: Path, workdir: Path, out: list[TargetResult]
) -> None:
    """Scenario 1: every target in turn, ``rounds`` times (``out`` grows as they finish, so
    an interrupted run keeps what it measured)."""
    for n in range(rounds):
        for target in targets:
            log(f"{target.label}:" + (f" round {n + 1} of {rounds}" if rounds > 1 else ""))
            out.append(Runner(target, plan, db, tables.CALLED, workdir, log).run())


def make_peer_plan(args: argparse.Namespace) -> PeerPlan | None:
    """Scenario 4's plan from the command line (15 s of calls, 5 s in a quick run); None
    when it is not run (--no-peer-flood, or a quick run without --peer-flood)."""
    if args.no_peer_flood or (args.quick and not args.peer_flood):
        return None
    if args.peer_max_cps < 1 or args.peer_steady_rate <= 0:
        raise SystemExit("--peer-max-cps, --peer-steady-rate: above 0")
    if args.peer_flood_seconds is not None and not 0 < args.peer_flood_seconds <= 60:
        raise SystemExit("--peer-flood-seconds: between 0 and 60")
    return PeerPlan(
        max_cps=args.peer_max_cps,
        steady_rate=args.peer_steady_rate,
        seconds=args.peer_flood_seconds or (5 if args.quick else 15),
        pike_density=args.pike_density,
    )


def peer_plan_meta(plan: PeerPlan | None) -> dict[str, object] | None:
    if plan is None:
        return None
    return {**{k: getattr(plan, k) for k in plan.__dataclass_fields__},
            "pike_density_used": plan.density}  # fmt: skip


def run_peer_floods(plan: PeerPlan, targets: list[Target], workdir: Path) -> list[PeerFloodResult]:
    """Scenario 4 on every proxy configuration (not the CDR variants), on its own tables."""
    proxies = [t for t in targets if t.is_proxy and not getattr(t, "cdr", "")]
    log(
        f"scenario 4: a customer at {plan.flood_rate:g} calls/s (max_cps {plan.max_cps})"
        f" beside one at {plan.steady_rate:g} calls/s, {plan.seconds:g} s:"
        f" {', '.join(t.label for t in proxies)}"
    )
    db = workdir / "peer-flood.db"
    rows, peers = tables.peer_flood_tables(GATEWAYS)
    tables.create_db(db, rows)
    tables.add_peers(db, peers, {tables.FLOODER_TAG: plan.max_cps})
    runner = PeerFloodRunner(plan, db, workdir, log)
    found: list[PeerFloodResult] = []
    for target in proxies:
        log(f"{target.label}:")
        found.append(runner.run(target))
    return found


def make_targets(
    args: argparse.Namespace,
    pks_ok: bool,
    cores: int,
    admin_port: int,
    accel: Path | None,
    webhook_url: str | None = None,
) -> list[Target]:
    """The targets of scenario 1, in order; pks runs ``accel`` (its compiled core) if built.

    SIPp direct first (the ceiling), then Kamailio and pks configurations taken in turn
    (Kamailio 1 worker, pks 1 process, Kamailio N workers, pks N workers): a drift of the
    machine's speed during the run then weighs on both proxies alike.
    """
    wanted = {t.strip() for t in args.targets.split(",") if t.strip()}
    kams: list[Target] = []
    if "kamailio" in wanted:
        kams = [Kamailio(children=n) for n in worker_counts(args.kamailio_workers, cores)]
    sinks = [s.strip() for s in args.pks_cdr.split(",") if s.strip()]
    bad = [s for s in sinks if s not in ("db", "webhook", "file")]
    if bad:
        raise SystemExit(f"--pks-cdr: unknown sink {', '.join(bad)} (db, webhook, file)")
    settings = tuple(args.pks_env)
    if any("=" not in a or not a.startswith("PKS_") for a in settings):
        raise SystemExit("--pks-env: PKS_NAME=value")
    groups: list[list[Target]] = []  # per worker count: the plain figures, then with CDRs
    if "pks" in wanted and pks_ok:
        for workers in worker_counts(args.pks_workers, cores):
            group: list[Target] = []
            for cdr in ("", *sinks):
                if accel is not None:
                    group.append(Pks(admin_port, workers, accel, cdr, webhook_url, settings))
                if accel is None or args.pks_core == "both":
                    group.append(Pks(admin_port, workers, None, cdr, webhook_url, settings))
            groups.append(group)
    targets: list[Target] = [Direct()] if "direct" in wanted else []
    for i in range(max(len(kams), len(groups))):
        targets += kams[i : i + 1]
        targets += groups[i] if i < len(groups) else []
    return targets


def worker_counts(spec: str, cores: int) -> list[int]:
    """``--pks-workers``, ``--kamailio-workers``: "1,auto" → [1, cores] (no duplicates)."""
    counts: list[int] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        n = cores if item == "auto" else int(item)
        if n < 1:
            raise SystemExit(f"worker counts: {item!r} is not a worker count")
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


def standard_notes(plan: Plan, cores: int) -> list[str]:
    from pksbench.measure import MAX_FAILED, MAX_RETRANS, MIN_PACE

    notes = [
        f"This machine has {cores} cores. Kamailio is measured with 1 worker and with one per"
        " core, pks as one process and with one worker per core (each its own column); CPU and"
        " memory are summed over every process of each proxy's tree.",
        "One SIPp caller and one SIPp callee (the gateway) share the machine's cores with the"
        f" proxy; both SIPp have {plan.buff_size // 1024} KiB socket buffers (-buff_size),"
        " the caller reads nothing per call (no -inf file) and the calls have no hold. The"
        " SIPp direct column is the caller straight to the callee: the load generator's own"
        " ceiling, measured with the same steps and rules as every proxy.",
        f"Maximum rate (the same rules for every column): steps of {plan.step_seconds:g} s,"
        f" each a fresh SIPp caller; the rate ×{plan.growth:g} from {plan.start_rate:g}"
        " calls/s until a step fails, then bisected until the lowest failed rate is within"
        f" {plan.precision * 100:.0f} % of the highest passed. A step passes with at most"
        f" {MAX_FAILED * 100:g} % failed calls, at most {MAX_RETRANS * 100:g} retransmissions"
        " per 100 calls (caller's and callee's) and SIPp creating calls at"
        f" {MIN_PACE * 100:.0f} % of the target rate or more. A call fails when a message is"
        f" missing {plan.recv_timeout_ms} ms after it was due (retransmissions included). A"
        " step after a failed one starts on freshly started proxy and callee."
        + (
            f" A failed step is tried {plan.confirm} more time(s) on fresh processes before"
            " its rate counts as failed (all trials are listed)."
            if plan.confirm
            else ""
        ),
        f"Latency and CPU per call at a moderate rate: {plan.latency_seconds:g} s at"
        f" {plan.latency_rate:g} calls/s, INVITE→200 from SIPp's message trace (µs"
        " timestamps); CPU per call at saturation: the step at the proxy's own maximum, from"
        " its start until the proxy is idle again, over the successful calls.",
        f"Memory: {plan.concurrent} calls opened at up to {plan.concurrent_rate:g} calls/s"
        " (half the proxy's maximum when lower) and held, on a freshly started proxy, read"
        " while all are open. RSS counts shared pages once per process (Kamailio's shared"
        " memory appears in every worker); PSS shares them out.",
        "Other jobs running on the machine during the run disturb the figures: compare runs"
        " made on an idle machine.",
    ]
    if plan.quick:
        notes.insert(
            0,
            "Quick run: short steps and a coarse bisection check that the harness works; its"
            " figures rank nothing (the full run, `scripts/bench`, applies the rules).",
        )
    if plan.flood_rate:
        notes.append(
            f"Flood (scenario 3): {plan.flood_rate:g} datagrams/s asked from 8 loopback"
            " addresses (127.66.0.1–8) that no address row knows — garbage, INVITE, OPTIONS,"
            " REGISTER in turn (`pksbench/flood.py`, one Python process) — from 1 s before"
            f" to 1 s after {plan.flood_seconds:g} s of legitimate calls at half the proxy's"
            " clean maximum; the same calls without the flood on a fresh proxy before. Flood"
            " CPU = proxy CPU with the flood minus without, over the flood's duration."
        )
    return notes


if __name__ == "__main__":
    sys.exit(main())
