"""Results: one Markdown report, one PNG figure and the raw JSON under ``bench/results/``.

A full run writes ``full.{md,png,json}``, a quick run ``quick.{md,png,json}``, so that a
quick check never overwrites the reference figures. The Markdown starts with the summary
table meant for the README. Ratios are pks / Kamailio, between each proxy's best
configuration (highest maximum) and per configuration (same worker count); a ratio of
maximum calls/s, or of CPU per call at the maximum, is refused (``bounded``) when either
proxy's maximum is above half the SIPp direct ceiling of the same run. Missing values print
as ``–`` with the reason in the notes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pksbench.lookups import SizeResult
from pksbench.measure import TargetResult
from pksbench.peerflood import PIKE_UNIT_S, REQUESTS_PER_CALL, PeerFloodResult, PeerPlan
from pksbench.scaling import ScalingResult
from pksbench.scaling import table as scaling_table


def _f(value: object, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # 1600 and 1600.0 print alike ("1 600")
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}".replace(",", " ")
        return f"{value:.{digits}g}"
    return str(value)


def _num(data: dict[str, object] | None, key: str) -> float | None:
    value = (data or {}).get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    r = a / b
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}×"


def _by_name(results: Sequence[TargetResult]) -> dict[str, TargetResult]:
    return {r.name: r for r in results}


Row = tuple[str, Callable[[TargetResult], float | None]]

BOUNDED = "bounded by the load generator"


def ceiling(results: Sequence[TargetResult]) -> float | None:
    """The SIPp direct maximum of this run (None: not measured)."""
    return next((r.max_cps for r in results if r.name == "direct"), None)


def bounded(r: TargetResult, results: Sequence[TargetResult]) -> bool:
    """Whether ``r``'s maximum says nothing about the proxy: above half the SIPp ceiling.

    A proxy column runs SIPp (caller and callee, the same messages as direct) and the proxy
    on the same cores; above half of what SIPp alone reaches, the load generator's share of
    the machine decides the figure. Without a ceiling in the run, every maximum is bounded.
    """
    top = ceiling(results)
    if r.max_cps is None:
        return False
    return top is None or r.max_cps > top / 2 or r.max_cps_capped


def _family(r: TargetResult) -> str:
    if r.name.startswith("kamailio"):
        return "kamailio"
    return r.name.split("-w", 1)[0]  # "pks", "pks-pure"


def _workers(r: TargetResult) -> str:
    return r.name.rsplit("-w", 1)[1] if "-w" in r.name else "1"


def best(results: Sequence[TargetResult], family: str) -> TargetResult | None:
    """The configuration of ``family`` with the highest maximum (its best on this machine)."""
    found = [r for r in results if _family(r) == family and r.max_cps is not None]
    return max(found, key=lambda r: r.max_cps or 0.0) if found else None


def pairs(results: Sequence[TargetResult]) -> list[tuple[str, TargetResult, TargetResult]]:
    """(title, pks configuration, Kamailio configuration): the bests, then by worker count."""
    found: list[tuple[str, TargetResult, TargetResult]] = []
    for fam in ("pks", "pks-pure"):
        p, k = best(results, fam), best(results, "kamailio")
        if p is not None and k is not None:
            found.append((f"best {fam} / best Kamailio", p, k))
    kams = {_workers(r): r for r in results if _family(r) == "kamailio"}
    for r in results:
        k = kams.get(_workers(r))
        if _family(r) in ("pks", "pks-pure") and k is not None:
            found.append((f"{r.label} / {k.label}", r, k))
    return found


def _us(ms: float | None) -> float | None:
    return None if ms is None else ms * 1000


def _flood_cell(r: TargetResult) -> str:
    f = r.flood
    if f is None or f.failed_flood is None:
        return "–"
    share = f.cpu_share
    cpu = "–" if share is None else f"{share * 100:.0f} %"
    return f"{f.failed_flood}/{f.calls} failed, {cpu} of a core"


def summary_table(
    results: Sequence[TargetResult],
    sizes: Sequence[SizeResult] = (),
    scales: Sequence[ScalingResult] = (),
) -> list[str]:
    """The README table: every column, and pks / Kamailio between the bests."""
    by = _by_name(results)
    order = _order(results)
    lat = next((r.latency_rate for r in results if r.latency_rate), None)
    pair = next(iter(pairs(results)), None)
    head = [by[n].label + (" (ceiling)" if n == "direct" else "") for n in order]
    ratio_head = "pks / Kamailio (bests)"
    lines = ["| measure | " + " | ".join([*head, ratio_head]) + " |"]
    lines.append("|---" * (len(order) + 2) + "|")
    rows: list[tuple[str, Callable[[TargetResult], float | None], bool]] = [
        ("max calls/s (rules: bench/README.md)", lambda r: r.max_cps, True),
        (f"CPU per call at {_f(lat)} calls/s (µs)", lambda r: _us(r.cpu_ms_per_call), False),
        ("CPU per call at its maximum (µs)", lambda r: _us(r.saturation_cpu_ms), True),
        (f"INVITE→200 p50 at {_f(lat)} calls/s (ms)", lambda r: r.p50_ms, False),
        (f"INVITE→200 p99 at {_f(lat)} calls/s (ms)", lambda r: r.p99_ms, False),
        ("PSS growth per open call (KiB)", lambda r: r.pss_kib_per_call, False),
    ]
    for title, get, at_max in rows:
        cells = [_max_text(by[n], results) if title.startswith("max") else _f(get(by[n]))
                 for n in order]  # fmt: skip
        cells.append(_pair_ratio(pair, get, at_max, results))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    if any(by[n].flood is not None for n in order):
        cells = [_flood_cell(by[n]) for n in order]
        lines.append("| flood: failed legitimate calls, proxy CPU on the flood | "
                     + " | ".join(cells) + " | |")  # fmt: skip
    lookup = _lookup_row(sizes, order, by)
    if lookup:
        lines.append(lookup)
    if scales:
        lines.append(_scaling_row(scales, order, by))
    return lines


def _scaling_row(
    scales: Sequence[ScalingResult], order: list[str], by: dict[str, TargetResult]
) -> str:
    """Scenario 5 in one row: under each worker configuration of pks, what it routes on as
    many free cores, × one process."""
    ratios = {s.label: s.ratio for s in scales}
    cells = [_ratio(ratios.get(by[n].label), 1.0) if by[n].label in ratios else ""
             for n in order]  # fmt: skip
    return "| on N free cores, × one process (scenario 5) | " + " | ".join(cells) + " | |"


def _lookup_row(
    sizes: Sequence[SizeResult], order: list[str], by: dict[str, TargetResult]
) -> str | None:
    """Scenario 2 in one row: dialplan lookup per call, smallest → largest table."""
    dp = [s for s in sizes if s.address == 0]
    if len(dp) < 2:
        return None
    small, large = dp[0], dp[-1]
    kam = f"{_f(small.kamailio.dialplan_us)} → {_f(large.kamailio.dialplan_us)}"
    p0 = _num(small.pks_functions, "customer_call_us")
    p1 = _num(large.pks_functions, "customer_call_us")
    cells = []
    for n in order:
        if n.startswith("kamailio"):
            cells.append(kam)
        elif n == "pks":
            cells.append(f"{_f(p0)} → {_f(p1)}")
        else:
            cells.append("")
    title = (
        f"dialplan lookup per call, {_count(small.dialplan)} → {_count(large.dialplan)} rules (µs)"
    )
    growth = _ratio(p1, p0)
    return f"| {title} | " + " | ".join(cells) + f" | pks {growth} its small-table cost |"


def _count(n: int) -> str:
    return f"{n // 1_000_000} M" if n >= 1_000_000 else f"{n:,}".replace(",", " ")


def _order(results: Sequence[TargetResult]) -> list[str]:
    names = [r.name for r in results]
    order = [n for n in names if n == "direct"]
    order += [n for n in names if n.startswith("kamailio")]
    order += [n for n in names if n.startswith("pks")]
    return order


def _max_text(r: TargetResult, results: Sequence[TargetResult]) -> str:
    if r.max_cps is None:
        return "–"
    text = ("≥ " if r.max_cps_capped else "") + _f(r.max_cps)
    if r.name != "direct" and bounded(r, results):
        text += " (bounded)"
    return text


def _pair_ratio(
    pair: tuple[str, TargetResult, TargetResult] | None,
    get: Callable[[TargetResult], float | None],
    at_max: bool,
    results: Sequence[TargetResult],
) -> str:
    """pks / Kamailio for one measure; refused at the maximum when either is bounded."""
    if pair is None:
        return "–"
    _, p, k = pair
    if at_max and (bounded(p, results) or bounded(k, results)):
        return f"not printed: {BOUNDED}"
    return _ratio(get(p), get(k))


def scenario1_table(results: Sequence[TargetResult], concurrent: int) -> list[str]:
    by = _by_name(results)
    order = _order(results)
    head = [by[n].label + (" (ceiling)" if n == "direct" else "") for n in order]
    lines = ["| measure | " + " | ".join(head) + " |"]
    lines.append("|---" * (len(order) + 1) + "|")
    lat = next((r.latency_rate for r in results if r.latency_rate), None)
    rows: list[Row] = [
        ("lowest failed step (calls/s)", lambda r: r.lowest_failed),
        (f"INVITE→180 p50 (ms) at {_f(lat)} cps", lambda r: r.p50_180_ms),
        (f"proxy CPU per call at {_f(lat)} cps (µs)", lambda r: _us(r.cpu_ms_per_call)),
        ("proxy CPU per call at its maximum (µs)", lambda r: _us(r.saturation_cpu_ms)),
        (f"proxy RSS with {concurrent} calls open (MiB, Σ processes)", lambda r: r.held_rss_mib),
        (f"proxy PSS with {concurrent} calls open (MiB, Σ processes)", lambda r: r.held_pss_mib),
        ("proxy RSS idle (MiB)", lambda r: r.idle_rss_mib),
        ("proxy PSS idle (MiB)", lambda r: r.idle_pss_mib),
        ("PSS growth per open call (KiB)", lambda r: r.pss_kib_per_call),
        ("start-up until routing (s)", lambda r: r.start_seconds if r.name != "direct" else None),
    ]
    lines.append("| max calls/s | " + " | ".join(_max_text(by[n], results) for n in order) + " |")
    for title, get in rows:
        lines.append(f"| {title} | " + " | ".join(_f(get(by[n])) for n in order) + " |")
    procs = [str(by[n].processes) if by[n].processes else "–" for n in order]
    lines.append("| processes measured | " + " | ".join(procs) + " |")
    return lines


def ratio_table(results: Sequence[TargetResult]) -> list[str]:
    """pks / Kamailio between the bests and per configuration (same worker count)."""
    found = pairs(results)
    if not found:
        return []
    lat = next((r.latency_rate for r in results if r.latency_rate), None)
    lines = ["| pks / Kamailio | " + " | ".join(t for t, _, _ in found) + " |"]
    lines.append("|---" * (len(found) + 1) + "|")
    rows: list[tuple[str, Callable[[TargetResult], float | None], bool]] = [
        ("max calls/s", lambda r: r.max_cps, True),
        (f"CPU per call at {_f(lat)} cps", lambda r: r.cpu_ms_per_call, False),
        ("CPU per call at its maximum", lambda r: r.saturation_cpu_ms, True),
        (f"INVITE→200 p99 at {_f(lat)} cps", lambda r: r.p99_ms, False),
        ("PSS growth per open call", lambda r: r.pss_kib_per_call, False),
    ]
    for title, get, at_max in rows:
        cells = [_pair_ratio(pair, get, at_max, results) for pair in found]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return lines


def flood_table(results: Sequence[TargetResult]) -> list[str]:
    flooded = [r for r in results if r.flood is not None]
    if not flooded:
        return []
    lines = [
        "| proxy | legitimate calls/s (½ clean max) × calls | flood datagrams/s asked /"
        " reached | failed legitimate calls without / with flood | caller retransmissions"
        " without / with | proxy CPU s without / with | proxy CPU on the flood (% of a core)"
        " | µs per flood datagram | answers to the strangers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in flooded:
        f = r.flood
        assert f is not None
        share = f.cpu_share
        lines.append(
            f"| {r.label} | {_f(f.legit_rate)} × {f.calls}"
            f" | {_f(f.flood_rate_asked)} / {_f(f.flood_rate_reached)}"
            f" | {_f(f.failed_clean)} / {_f(f.failed_flood)}"
            f" | {_f(f.retrans_clean)} / {_f(f.retrans_flood)}"
            f" | {_f(f.cpu_clean_s)} / {_f(f.cpu_flood_s)}"
            f" | {'–' if share is None else f'{share * 100:.0f} %'}"
            f" | {_f(f.us_per_datagram)} | {_f(f.answers)} |" + (f" {f.error}" if f.error else "")
        )
    return lines


def peer_flood_table(found: Sequence[PeerFloodResult]) -> list[str]:
    """Scenario 4: per proxy configuration, the steady customer's calls and the flooder's."""
    if not found:
        return []
    lines = [
        "| proxy | what limits the flooder | steady customer: calls placed / succeeded /"
        " failed | flooder: calls placed / answered (per s of calling) / refused 503 / no"
        " answer | flooder's last answered call, s after its first | proxy CPU s (% of a core) |",
        "|---|---|---|---|---|---|",
    ]
    for r in found:
        share = r.cpu_share
        other = sum(r.flood_other.values())
        lines.append(
            f"| {r.label} | {r.guard}"
            f" | {r.steady_planned} / {_f(r.steady_successful)} / {_f(r.steady_failed)}"
            f" | {r.flood_planned} / {_f(r.flood_answered)} ({_f(r.answered_per_s)})"
            f" / {_f(r.flood_refused)} / {_f(r.flood_unanswered)}"
            + (f" (+{other} other answers)" if other else "")
            + f" | {_f(r.flood_last_answer_s)}"
            + f" | {_f(r.cpu_s)} ({'–' if share is None else f'{share * 100:.0f} %'}) |"
            + (f" {r.error}" if r.error else "")
        )
    return lines


def peer_flood_notes(plan: PeerPlan | None, found: Sequence[PeerFloodResult]) -> list[str]:
    """What scenario 4 did and why pike is set as it is (nothing when it was not run)."""
    if plan is None or not found:
        return []
    steady = REQUESTS_PER_CALL * plan.steady_rate * PIKE_UNIT_S
    flood = REQUESTS_PER_CALL * plan.flood_rate * PIKE_UNIT_S
    return [
        f"Customer flood (scenario 4): customer A (its own address, `pks_peer.max_cps`"
        f" {plan.max_cps}) places calls at {plan.flood_rate:g}/s ({plan.factor:g}× its"
        f" max_cps) while customer B (another address, no limit) places calls at"
        f" {plan.steady_rate:g}/s, both for {plan.seconds:g} s through the same proxy, on"
        " fresh processes. A's outcomes come from its message trace (`sipp/flooder.xml`"
        " acknowledges a 503): answered, refused with 503, or no final answer at all. Proxy"
        " CPU from the callers' start until the proxy is idle again.",
        "pks limits the customer: beyond max_cps in the current second a new call gets 503"
        ' with Retry-After (docs/security.md, "Floods and fraud"; PKS_RATE_PEER_LIMIT left'
        " at 0, the advice for known peers). With worker processes and no PKS_REDIS_URL,"
        " each worker counts alone and pks hands datagrams to workers by Call-ID"
        " (docs/workers.md): the customer's calls spread over the workers, which let through"
        " up to max_cps each. Kamailio runs P-KISS-SBC's guard"
        " (`kamailio.cfg` WITH_PIKE): pike, sampling_time_unit 2, remove_latency 4, then"
        " a 300 s ban in an htable, requests from a banned source dropped unanswered. pike"
        " limits each **source IP address**, not a customer's calls per second: it counts"
        f" every request (about {REQUESTS_PER_CALL} per call: INVITE, ACK, BYE, and"
        " retransmissions) against one threshold for all sources, and bans the source"
        f" outright. Here reqs_density_per_unit is {plan.density}"
        + (
            " (set by --pike-density)"
            if plan.pike_density
            else f" (twice B's {steady:g} requests per 2 s, so that B passes)"
        )
        + f"; A sends about {flood:g} per 2 s. A threshold at A's contract"
        f" ({REQUESTS_PER_CALL * plan.max_cps * PIKE_UNIT_S} per 2 s) would ban B too;"
        " a customer behind several addresses, or several customers behind one, cannot be"
        " told apart by it.",
    ]


def median_rounds(results: Sequence[TargetResult]) -> tuple[list[TargetResult], list[str]]:
    """``--rounds``: each target's median round by maximum calls/s (the lower of the two
    middle ones for an even count), in first-seen order, and a note per target measured more
    than once with every round's maximum and CPU per call."""
    by_label: dict[str, list[TargetResult]] = {}
    for r in results:
        by_label.setdefault(r.label, []).append(r)
    kept: list[TargetResult] = []
    notes: list[str] = []
    for label, rounds in by_label.items():
        ranked = sorted(rounds, key=lambda r: -1.0 if r.max_cps is None else r.max_cps)
        median = ranked[(len(ranked) - 1) // 2]
        kept.append(median)
        if len(rounds) > 1:
            each = "; ".join(
                f"{_f(r.max_cps)} calls/s, {_f(_us(r.cpu_ms_per_call))} µs,"
                f" {_f(_us(r.saturation_cpu_ms))} µs"
                for r in rounds
            )
            notes.append(
                f"{label}, {len(rounds)} rounds (maximum calls/s, CPU per call at 200 calls/s and"
                f" at the maximum): {each};"
                f" the table shows the median round ({_f(median.max_cps)} calls/s)"
            )
    return kept, notes


def headroom_notes(results: Sequence[TargetResult]) -> list[str]:
    """Why a ratio is missing, and how to give the load generator more room."""
    top = ceiling(results)
    hit = [r for r in results if r.name != "direct" and bounded(r, results)]
    if not hit:
        return []
    if top is None:
        why = "no SIPp direct ceiling was measured in this run (--targets without direct)"
    else:
        half = _f(top / 2)
        names = ", ".join(f"{r.label} {_f(r.max_cps)}" for r in hit)
        why = f"above half the SIPp direct ceiling ({_f(top)} / 2 = {half} calls/s): {names}"
    return [
        f"No ratio of maximum calls/s (nor of CPU at the maximum) is printed for a proxy whose"
        f" maximum is {BOUNDED}: {why}. There the load generator, which shares the cores,"
        " decides the figure. More headroom: a machine with more cores (SIPp caller and callee"
        " each want a core of their own beside the proxy's), no other job on it, larger"
        " net.core.rmem_max/wmem_max (scripts/bench raises them to 4 MiB), or fewer proxy"
        " workers than cores; a quick run (short steps, coarse bisection) ranks nothing."
    ]


def steps_lines(results: Sequence[TargetResult]) -> list[str]:
    lines = []
    for r in results:
        if not r.steps:
            continue
        parts = []
        for s in r.steps:
            mark = "✓" if s.passed else "✗"
            extra = "" if s.passed else f" ({s.why})"
            if s.passed and s.cpu_ms_per_call is not None:
                extra = f" ({_f(s.cpu_ms_per_call * 1000)} µs CPU/call)"
            parts.append(f"{s.rate:g} {mark}{extra}")
        lines.append(f"- **{r.label}**: " + ", ".join(parts))
    return lines


def scenario2_tables(sizes: Sequence[SizeResult]) -> list[str]:
    lines = [
        "Lookup cost per call (µs). pks: the routing functions called directly (customer"
        " call = `lookup(s, 1, n)` miss then `lookup(s, 2, n)` hit), best of several timed"
        " loops. Kamailio: the benchmark module's timer around `allow_source_address_group()`"
        " and around `dp_match(1) || dp_match(2)` inside the running proxy, median over the"
        " calls; the last column is the same timer around nothing (its own cost, included in"
        " the Kamailio figures).",
        "",
        "| tables | pks customer-call lookup | Kamailio dp_match chain (median / p99) |"
        " pks / Kamailio | pks DID hit | pks no-rule | pks authorize (caller / host / unknown)"
        " | Kamailio authorize | Kamailio empty timer |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sizes:
        f = s.pks_functions
        k = s.kamailio
        cust_f = _num(f, "customer_call_us")
        auth = " / ".join(
            _f(_num(f, key))
            for key in ("authorize_caller_us", "authorize_host_us", "authorize_unknown_us")
        )
        err = f" ({s.pks_functions_error})" if s.pks_functions_error else ""
        lines.append(
            f"| {s.label} | {_f(cust_f)}{err} | {_f(k.dialplan_us)} / {_f(k.dialplan_p99_us)}"
            f" | {_ratio(cust_f, k.dialplan_us)} | {_f(_num(f, 'did_hit_us'))}"
            f" | {_f(_num(f, 'miss_us'))} | {auth} | {_f(k.auth_us)} | {_f(k.timer_us)} |"
        )
    lines += [
        "",
        "Whole proxy on those tables (same SQLite file, same called numbers, low rate sized on"
        " Kamailio so that no call queues; Kamailio runs with the timers on).",
        "",
        "| tables | calls/s used | start-up s (Kamailio / pks) | pks snapshot build s"
        " | idle PSS MiB (Kamailio / pks) | CPU ms per call (Kamailio / pks) | pks / Kamailio CPU"
        " | failed calls (Kamailio / pks) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in sizes:
        k, p = s.kamailio, s.pks
        build = _num(s.pks_functions, "build_seconds")
        lines.append(
            f"| {s.label} | {_f(k.rate)} | {_f(k.start_seconds)} / {_f(p.start_seconds)}"
            f" | {_f(build)} | {_f(k.idle_pss_mib)} / {_f(p.idle_pss_mib)}"
            f" | {_f(k.cpu_ms_per_call)} / {_f(p.cpu_ms_per_call)}"
            f" | {_ratio(p.cpu_ms_per_call, k.cpu_ms_per_call)}"
            f" | {_f(k.failed)} / {_f(p.failed)} |"
        )
    errors = [
        f"- {s.label}, {who}: {e}"
        for s in sizes
        for who, e in (("Kamailio", s.kamailio.error), ("pks", s.pks.error))
        if e
    ]
    if errors:
        lines += ["", "Errors:", "", *errors]
    return lines


def write(
    path_stem: Path,
    meta: dict[str, object],
    machine: dict[str, str],
    results: Sequence[TargetResult],
    sizes: Sequence[SizeResult],
    notes: Sequence[str],
    peer_floods: Sequence[PeerFloodResult] = (),
    scales: Sequence[ScalingResult] = (),
) -> list[Path]:
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    concurrent = int(str(meta.get("concurrent", 0)))
    md = [
        f"# pks-sip-proxy benchmark — {meta['mode']} run, {meta['date']}",
        "",
        "Produced by `scripts/bench" + (" --quick" if meta["mode"] == "quick" else "") + "`."
        " Reports, not pass/fail. Same SQLite tables, same SIPp scenarios (`bench/sipp/`),"
        " Kamailio configured for the same routing (`bench/kamailio/kamailio.cfg`).",
        "",
        "## Machine",
        "",
        *[f"- {k}: {v}" for k, v in machine.items()],
    ]
    if results:
        md += [
            "",
            "## Summary",
            "",
            *summary_table(results, sizes, scales),
            "",
            "## Scenario 1 — calls through the proxy",
            "",
            *scenario1_table(results, concurrent),
            "",
            *ratio_table(results),
            "",
            "Rate steps (calls/s, ✓ = passed the rules; in brackets the proxy CPU per call of"
            " a passed step until idle again, or why a step failed):",
            "",
            *steps_lines(results),
        ]
    flood = flood_table(results)
    if flood:
        md += ["", "## Scenario 3 — a stranger's flood during legitimate calls", "", *flood]
    errors = [f"- {r.label}: {r.error}" for r in results if r.error]
    if errors:
        md += ["", "Errors:", "", *errors]
    if peer_floods:
        md += [
            "",
            "## Scenario 4 — an authorized customer floods at"
            f" {peer_floods[0].flood_rate / peer_floods[0].max_cps:g}× its max_cps",
            "",
            *peer_flood_table(peer_floods),
        ]
    if scales:
        md += ["", "## Scenario 5 — pks workers on free cores", "", *scaling_table(scales)]
    if sizes:
        md += ["", "## Scenario 2 — lookup cost as the tables grow", "", *scenario2_tables(sizes)]
    md += ["", "## Notes", "", *[f"- {n}" for n in notes], ""]
    written = []
    md_path = path_stem.with_suffix(".md")
    md_path.write_text("\n".join(md))
    written.append(md_path)
    json_path = path_stem.with_suffix(".json")
    json_path.write_text(
        json.dumps(
            {
                "meta": meta,
                "machine": machine,
                "targets": [r.as_dict() for r in results],
                "sizes": [s.as_dict() for s in sizes],
                "peer_floods": [f.as_dict() for f in peer_floods],
                "scaling": [s.as_dict() for s in scales],
                "notes": list(notes),
            },
            indent=2,
            default=str,
        )
    )
    written.append(json_path)
    png = plot(path_stem.with_suffix(".png"), meta, results, sizes)
    if png is not None:
        written.append(png)
    return written


def _colors(results: Sequence[TargetResult]) -> dict[str, str]:
    colors = {"direct": "#9e9e9e", "kamailio": "#d95f02", "pks": "#1b9e77", "pks-pure": "#7570b3"}
    for r in results:  # N-worker variants: a darker shade of their one-process colour
        if r.name.startswith("kamailio"):
            colors[r.name] = "#d95f02" if r.name == "kamailio-w1" else "#8c3c01"
        elif r.name not in colors:
            colors[r.name] = {"pks": "#0b5e47", "pks-pure": "#4a4587"}.get(
                r.name.rsplit("-w", 1)[0], "#555"
            )
    return colors


def plot(
    path: Path,
    meta: dict[str, object],
    results: Sequence[TargetResult],
    sizes: Sequence[SizeResult],
) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError:
        return None
    colors = _colors(results)
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    fig.suptitle(f"pks-sip-proxy vs Kamailio 5.6 — {meta['mode']} run, {meta['date']}")

    def bars(
        ax: Any,
        title: str,
        get: Callable[[TargetResult], float | None],
        unit: str,
        proxies_only: bool = False,
    ) -> None:
        names, values, cols = [], [], []
        for r in results:
            if proxies_only and r.name == "direct":
                continue
            v = get(r)
            names.append(r.label)
            values.append(v or 0.0)
            cols.append(colors.get(r.name, "#555"))
        ax.bar(names, values, color=cols)
        for i, v in enumerate(values):
            ax.annotate(_f(v), (i, v), ha="center", va="bottom", fontsize=9)
        ax.set_title(title)
        ax.set_ylabel(unit)

    bars(axes[0][0], "max calls/s (the bench's rules)", lambda r: r.max_cps, "calls/s")
    ax = axes[0][1]
    labels = [r.label for r in results]
    x = range(len(results))
    p50 = [r.p50_ms or 0.0 for r in results]
    p99 = [r.p99_ms or 0.0 for r in results]
    ax.bar(
        [i - 0.2 for i in x],
        p50,
        0.4,
        label="p50",
        color=[colors.get(r.name, "#555") for r in results],
        alpha=0.6,
    )
    ax.bar(
        [i + 0.2 for i in x],
        p99,
        0.4,
        label="p99",
        color=[colors.get(r.name, "#555") for r in results],
    )
    ax.set_xticks(list(x), labels)
    lat = next((r.latency_rate for r in results if r.latency_rate), None)
    ax.set_title(f"INVITE→200 latency at {_f(lat)} calls/s (p50 light, p99 dark)")
    ax.set_ylabel("ms")
    bars(axes[0][2], "proxy CPU time per call", lambda r: r.cpu_ms_per_call, "ms", True)
    bars(
        axes[1][0],
        f"proxy PSS with {meta.get('concurrent')} calls open",
        lambda r: r.held_pss_mib,
        "MiB",
        True,
    )

    ax = axes[1][1]
    for r in results:
        if r.steps:
            pts = sorted((s.rate, s.result.failed_ratio * 100) for s in r.steps)
            ax.plot(
                [p[0] for p in pts],
                [max(p[1], 1e-3) for p in pts],
                "o-",
                color=colors.get(r.name, "#555"),
                label=r.label,
            )
    ax.axhline(0.1, color="red", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_title("failed calls per rate step (0.1 % line)")
    ax.set_xlabel("offered calls/s")
    ax.set_ylabel("% failed (floor 0.001)")
    if any(r.steps for r in results):
        ax.legend(fontsize=8)

    ax = axes[1][2]
    dp_sizes = [s for s in sizes if s.address == 0]
    if dp_sizes:
        xs = [s.dialplan for s in dp_sizes]
        pks_us = [_num(s.pks_functions, "customer_call_us") or float("nan") for s in dp_sizes]
        kam_us = [s.kamailio.dialplan_us or float("nan") for s in dp_sizes]
        ax.plot(xs, kam_us, "o-", color=colors["kamailio"], label="Kamailio dp_match chain")
        ax.plot(xs, pks_us, "o-", color=colors["pks"], label="pks lookup (dpid 1 then 2)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    ax.set_title("dialplan lookup per call vs rules")
    ax.set_xlabel("dialplan rules")
    ax.set_ylabel("µs")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
