"""Beside the data path: ``pks cdr tail`` and ``pks cdr export`` — call records read back
(docs/cdr.md), through the running proxy's admin API when it answers, else straight from the
database sink's table or the file sink's file (``PKS_CDR_*``, ``--db`` forces that)."""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from pks.cdr.fields import FIELDS, parse_time
from pks.cdr.query import STATUSES, Filters, NoStore, search
from pks.cli.backend import ApiBackend, choose
from pks.cli.context import JsonOption, options, settings
from pks.cli.output import fail

__all__ = ["cdr_app"]

cdr_app = typer.Typer(help="Call records: tail and export (docs/cdr.md).", no_args_is_help=True)

PeerOption = typer.Option(None, "--peer", help="Only calls from this source peer tag.")
NumberOption = typer.Option(
    None, "--number", help="Only calls whose caller or called number starts with this prefix."
)
StatusOption = typer.Option(None, "--status", help=f"Only calls {'|'.join(STATUSES)}.")


def _fetch(filters: Filters) -> list[dict[str, Any]]:
    config = settings()
    chosen = choose(config, options.force_db, quiet=True)
    if isinstance(chosen, ApiBackend):
        params: dict[str, Any] = {
            "limit": filters.limit,
            "order": "desc" if filters.newest_first else "asc",
        }
        for key in ("peer", "number", "status", "since", "until"):
            value = getattr(filters, key)
            if value is not None:
                params[key] = value
        found: list[dict[str, Any]] = chosen.call("GET", "/api/v1/cdrs", **params)
        return found
    try:
        return search(config, filters)
    except NoStore as exc:
        fail(str(exc), code=2)


def _time(name: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        fail(f"{name}: expected an ISO 8601 time (2027-02-05T10:00:00Z) or Unix seconds", code=2)


def _status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        fail(f"--status: expected one of {', '.join(STATUSES)}", code=2)
    return status


def _line(record: dict[str, Any]) -> str:
    """One record on one line, for people."""
    tried = " → ".join(
        f"{a.get('gateway')} {a.get('code') or '…'}" for a in record.get("attempts") or []
    )
    parts = [
        record.get("start") or "-",
        f"{record.get('status') or '-':9}",
        f"{record.get('caller') or '-'} → {record.get('called') or '-'}",
        f"peer {record.get('peer') or '-'}",
        f"{record.get('code') or '-'} {record.get('reason') or ''}".strip(),
        f"{record.get('duration') or 0:g} s",
    ]
    if record.get("ended_by"):
        parts.append(f"ended by {record['ended_by']}")
    if tried:
        parts.append(f"via {tried}")
    parts.append(f"Call-ID {record.get('call_id')}")
    return "  ".join(parts)


@cdr_app.command()
def tail(
    count: int = typer.Option(20, "-n", "--lines", min=1, help="How many of the newest."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Then print new ones as they come."),
    peer: str | None = PeerOption,
    number: str | None = NumberOption,
    status: str | None = StatusOption,
    as_json: bool = JsonOption,
) -> None:
    """The newest call records, oldest first (JSON lines with --json)."""
    filters = Filters(peer=peer, number=number, status=_status(status), limit=count)
    seen: set[str] = set()

    def show(records: list[dict[str, Any]]) -> None:
        for record in sorted(records, key=lambda r: r.get("start") or ""):
            if record.get("id") in seen:
                continue
            seen.add(str(record.get("id")))
            typer.echo(json.dumps(record) if as_json else _line(record))

    show(_fetch(filters))
    if not follow:
        return
    newest = Filters(peer=peer, number=number, status=status, limit=max(count, 500))
    try:
        while True:
            time.sleep(1.0)
            show(_fetch(newest))
    except KeyboardInterrupt:
        pass


@cdr_app.command()
def export(
    since: str = typer.Option(
        ...,
        "--since",
        help="Calls started at or after (ISO 8601, a date, or Unix seconds; UTC when no offset).",
    ),
    until: str | None = typer.Option(None, "--until", help="Calls started before."),
    fmt: str = typer.Option("json", "--format", help="csv or json (JSON lines)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="File (not stdout)."),  # noqa: B008
    peer: str | None = PeerOption,
    number: str | None = NumberOption,
    status: str | None = StatusOption,
) -> None:
    """Every call record of a time range, oldest first, as CSV or JSON lines."""
    if fmt not in ("csv", "json"):
        fail("--format: expected csv or json", code=2)
    filters = Filters(
        peer=peer,
        number=number,
        status=_status(status),
        since=_time("--since", since),
        until=_time("--until", until),
        limit=0,
        newest_first=False,
    )
    records = _fetch(filters)
    text = to_csv(records) if fmt == "csv" else "".join(json.dumps(r) + "\n" for r in records)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        typer.echo(f"{len(records)} call record(s) written to {output}", err=True)


def to_csv(records: list[dict[str, Any]]) -> str:
    """``FIELDS`` as columns; ``attempts`` as ``gateway code`` pairs separated by ``;``."""
    out = io.StringIO()
    writer = csv.DictWriter(out, FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = dict(record)
        row["attempts"] = ";".join(
            f"{a.get('gateway')} {a.get('code') if a.get('code') is not None else ''}".strip()
            for a in record.get("attempts") or []
        )
        writer.writerow({key: "" if row.get(key) is None else row.get(key) for key in FIELDS})
    return out.getvalue()
