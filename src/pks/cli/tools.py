"""Beside the data path: ``pks route explain``, ``pks import`` and ``pks export``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from pks.cli.backend import DbBackend
from pks.cli.context import JsonOption, backend
from pks.cli.output import emit, fail, note, table

__all__ = ["export_command", "import_command", "route_app"]

route_app = typer.Typer(help="Routing tools.", no_args_is_help=True)


def _describe(r: dict[str, Any]) -> str:
    lines = [f"call from {r['source']} to {r['number']}"]
    a = r["address"]
    if a is None:
        lines.append("  source:   no address row matches → dropped")
    else:
        lines.append(
            f"  source:   address row {a['id']} ({a['match']}): grp {a['grp']}"
            f" ({a['kind'] or 'not routable'}), tag {a['tag']}"
        )
    for step in r["dialplan"]:
        rule = step["rule"]
        found = (
            f"rule {rule['id']} (pr {rule['pr']}, match_op {rule['match_op']},"
            f" {rule['match_exp']!r}, match_len {rule['match_len']}) → attrs {rule['attrs']}"
            if rule
            else "no rule matches"
            if step["known"]
            else "no such dpid"
        )
        lines.append(f"  dpid {step['dpid']}:   {found}")
        for out in step["ruled_out_by_match_len"]:
            lines.append(
                f"            rule {out['id']} {out['match_exp']!r} matches but its"
                f" match_len {out['match_len']} is not the number's length"
            )
    if r["setid"] is not None:
        lines.append(f"  set:      {r['setid']}")
    if r["gateways"]:
        lines.append("  gateways, in the order a call tries them:")
        # ruri_host: the host:port the R-URI gets at that gateway; None: the caller's is kept
        gateways = [
            {**g, "state": g.get("state", "-"), "ruri_host": g.get("ruri_host") or "keep"}
            for g in r["gateways"]
        ]
        cols = ["order", "uri", "transport", "socket", "ruri_host", "state"]
        lines += ["    " + line for line in table(gateways, cols).splitlines()]
    for s in r["skipped"]:
        lines.append(f"  skipped:  {s['uri']} ({s['why']})")
    fraud = r.get("fraud")
    if fraud is not None:  # stage 7: blocked prefixes, calls per second, international calls
        blocked = fraud["blocked"]
        if blocked is not None:
            whose = "every peer" if blocked["tag"] is None else f"peer {blocked['tag']}"
            why = blocked["reason"] or "no reason given"
            lines.append(f"  blocked:  {blocked['prefix']} for {whose} (id {blocked['id']}): {why}")
        if fraud.get("max_cps") is not None:
            now = fraud.get("calls_this_second")
            seen = "" if now is None else f", {now} this second"
            lines.append(f"  max_cps:  {fraud['max_cps']}{seen}")
        if fraud.get("max_intl_calls") is not None:
            open_calls = fraud.get("intl_calls")
            seen = "" if open_calls is None else f", {open_calls} open"
            lines.append(f"  intl:     at most {fraud['max_intl_calls']}{seen}")
    lines.append(f"  verdict:  {r['verdict']} — {r['reason']}")
    return "\n".join(lines)


@route_app.command("explain")
def route_explain(
    source: str = typer.Option(..., "--from", help="IP[:PORT] of the caller (5060 if no port)"),
    number: str = typer.Option(..., "--to", help="the called number (R-URI user part)"),
    as_json: bool = JsonOption,
) -> None:
    """Dry run: which peer and group, which rule, which set, which gateways in which order."""
    chosen = backend(quiet=True)
    if not isinstance(chosen, DbBackend):
        result = chosen.call("GET", "/api/v1/explain", source=source, number=number)
    else:
        from pks.provision.peers import parse_source
        from pks.route.explain import explain
        from pks.route.snapshot import SnapshotError, build_snapshot

        note("pks: explaining with the tables in the database (no proxy answers)")
        try:
            ip, _, port = parse_source(source)
        except ValueError as exc:
            fail(str(exc), code=2)
        try:
            snapshot = build_snapshot(chosen.rows())
        except SnapshotError as exc:
            fail("the tables cannot be loaded", exc.problems)
        result = explain(snapshot, ip, port or 5060, number).as_dict()
    emit(result, as_json, _describe)
    if result["verdict"] != "forward":
        raise typer.Exit(3)


def import_command(
    files: list[Path] = typer.Argument(..., help="dbtext files: address, dialplan, dispatcher"),  # noqa: B008 - typer's style
    check: bool = typer.Option(False, "--check", help="Report only, write nothing."),
    as_json: bool = JsonOption,
) -> None:
    """Replace tables from Kamailio dbtext files; nothing is written if any row is wrong."""
    texts: dict[str, str] = {}
    for path in files:
        try:
            texts[str(path)] = path.read_text()
        except OSError as exc:
            fail(f"cannot read {path}: {exc}", code=2)
    result = backend(quiet=as_json).call(
        "POST", "/api/v1/import", {"files": texts, "check_only": check}
    )

    def human(r: dict[str, Any]) -> str:
        data = r["data"]
        counts = ", ".join(f"{n} {t} rows" for t, n in data["tables"].items())
        verb = "would import" if check else "imported"
        live = "" if check else " (live now)" if r["applied"] else f" ({r['reload']})"
        warnings = [f"  warning: {w}" for w in data["warnings"]]
        return "\n".join([f"{verb} {counts}{live}", *warnings])

    emit(result, as_json, human)


def export_command(
    directory: Path = typer.Option(None, "--dir", help="Write one file per table here."),  # noqa: B008 - typer's style
    table_names: list[str] = typer.Option(["address", "dialplan", "dispatcher"], "--table"),  # noqa: B008 - typer's style
    fmt: str = typer.Option("tsv", "--format", help="tsv (tab-separated) or dbtext (':')"),
) -> None:
    """Print (or write) tables in Kamailio's dbtext format, as the seed shows them."""
    if fmt not in ("tsv", "dbtext"):
        fail(f"unknown format {fmt!r} (tsv or dbtext)", code=2)
    files = backend(quiet=True).call("GET", "/api/v1/export", table=table_names, format=fmt)
    if directory is None:
        typer.echo("\n".join(files.values()), nl=False)
        return
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
        note(f"wrote {directory / name}")
