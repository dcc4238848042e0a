"""Results: one Markdown report, one PNG figure and the raw JSON under ``bench/results/``.

A full run writes ``full.{md,png,json}``, a quick run ``quick.{md,png,json}``, so that a
quick check never overwrites the reference figures. Missing values print as ``–`` with the
reason in the notes; ratios are pks / Kamailio (below 1 is better for time, CPU and memory,
above 1 is better for calls per second).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pksbench.lookups import SizeResult
from pksbench.measure import TargetResult


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


def scenario1_table(results: Sequence[TargetResult], concurrent: int) -> list[str]:
    by = _by_name(results)
    order: list[str] = [n for n in ("direct", "kamailio") if n in by]
    order += [r.name for r in results if r.name.startswith("pks")]
    head = [by[n].label + (" (ceiling)" if n == "direct" else "") for n in order]
    # one ratio column per pks variant (one process, N workers, pure Python)
    ratios = [n for n in order if n.startswith("pks")] if "kamailio" in by else []
    ratio_head = [f"{by[n].label} / Kamailio" for n in ratios] or ["pks / Kamailio"]
    lines = ["| measure | " + " | ".join(head + ratio_head) + " |"]
    lines.append("|---" * (len(order) + len(ratio_head) + 1) + "|")
    lat = next((r.latency_rate for r in results if r.latency_rate), None)
    loaded = loaded_rate(results)
    rows: list[Row] = [
        ("max sustained calls/s (< 0.1 % failed)", lambda r: r.max_cps),
        (f"INVITE→200 p50 (ms) at {_f(lat)} cps", lambda r: r.p50_ms),
        (f"INVITE→200 p99 (ms) at {_f(lat)} cps", lambda r: r.p99_ms),
        ("INVITE→180 p50 (ms)", lambda r: r.p50_180_ms),
        (f"proxy CPU per call at {_f(lat)} cps (ms)", lambda r: r.cpu_ms_per_call),
        (
            f"proxy CPU per call at {_f(loaded)} cps (ms, highest step every proxy passed)",
            lambda r: r.step_cpu_ms(loaded) if loaded is not None else None,
        ),
        (f"proxy RSS with {concurrent} calls open (MiB, Σ processes)", lambda r: r.held_rss_mib),
        (f"proxy PSS with {concurrent} calls open (MiB, Σ processes)", lambda r: r.held_pss_mib),
        ("proxy RSS idle (MiB)", lambda r: r.idle_rss_mib),
        ("proxy PSS idle (MiB)", lambda r: r.idle_pss_mib),
        ("PSS growth per open call (KiB)", lambda r: r.pss_kib_per_call),
        ("start-up until routing (s)", lambda r: r.start_seconds if r.name != "direct" else None),
    ]
    for title, get in rows:
        cells = []
        for n in order:
            value = get(by[n])
            text = _f(value)
            if title.startswith("max") and by[n].max_cps_capped and value is not None:
                text = "≥ " + text
            cells.append(text)
        k = by.get("kamailio")
        cells += [_ratio(get(by[n]), get(k)) for n in ratios] if k is not None else ["–"]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    blank = " |" * (len(ratio_head) + 1)
    procs = [str(by[n].processes) if by[n].processes else "–" for n in order]
    lines.append("| processes measured | " + " | ".join(procs) + blank)
    gw = []
    for n in order:
        calls = by[n].gateway_calls
        gw.append(" / ".join(str(c) for c in calls.values()) if calls else "–")
    lines.append("| calls received per gateway (whole phase) | " + " | ".join(gw) + blank)
    return lines


def loaded_rate(results: Sequence[TargetResult]) -> float | None:
    """The highest rate step that every proxy passed (where their CPU per call compares)."""
    passed = [{s.rate for s in r.steps if s.passed} for r in results if r.name != "direct"]
    common = set.intersection(*passed) if passed else set()
    return max(common) if common else None


def steps_lines(results: Sequence[TargetResult]) -> list[str]:
    lines = []
    for r in results:
        if not r.steps:
            continue
        parts = []
        for s in r.steps:
            mark = "✓" if s.passed else "✗"
            extra = "" if s.passed else f" ({s.result.failed_ratio * 100:.2g} % failed)"
            if s.passed and s.cpu_ms_per_call is not None:
                extra = f" ({_f(s.cpu_ms_per_call)} ms CPU/call)"
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
        "",
        "## Scenario 1 — calls through the proxy",
        "",
        *scenario1_table(results, concurrent),
        "",
        "Rate steps (calls/s, ✓ = under 0.1 % failed and SIPp kept the pace; in brackets the"
        " proxy CPU per call of a passed step, until idle again):",
        "",
        *steps_lines(results),
    ]
    errors = [f"- {r.label}: {r.error}" for r in results if r.error]
    if errors:
        md += ["", "Errors:", "", *errors]
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
    colors = {"direct": "#9e9e9e", "kamailio": "#d95f02", "pks": "#1b9e77", "pks-pure": "#7570b3"}
    for r in results:  # N-worker variants: a darker shade of their one-process colour
        if r.name not in colors:
            colors[r.name] = {"pks": "#0b5e47", "pks-pure": "#4a4587"}.get(
                r.name.rsplit("-w", 1)[0], "#555"
            )
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

    bars(axes[0][0], "max sustained calls/s (< 0.1 % failed)", lambda r: r.max_cps, "calls/s")
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
