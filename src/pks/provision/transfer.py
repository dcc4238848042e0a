"""Beside the data path: import and export of whole tables in Kamailio's dbtext format.

An import replaces the rows of the tables it is given (ids kept) in one transaction, after
checking the result exactly as the router would load it (:func:`check_rows`): any error —
a row of the wrong type, a regex the PCRE engine refuses, a rule that can never match — and
nothing at all is written; warnings (rules routing to a set with no gateway…) are reported
but do not stop it. ``check_only`` reports without writing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import Engine, delete, insert

from pks.provision.checks import check_rows
from pks.provision.dbtext import dump_table, parse_table
from pks.provision.errors import Invalid
from pks.provision.store import (
    KAMAILIO_TABLES,
    check_fits,
    ensure_tables,
    read_rows,
    refused_values,
    sync_sequence,
)

__all__ = ["export_tables", "import_tables"]


def import_tables(
    engine: Engine,
    files: Mapping[str, str],
    *,
    check_only: bool = False,
    sockets: Collection[str] | None = None,
) -> dict[str, Any]:
    """Replace the tables found in ``files`` (source name → text); :class:`Invalid` if wrong.

    Returns ``{"tables": {name: rows}, "warnings": [...], "written": bool}``.
    """
    parsed = [parse_table(text, source) for source, text in files.items()]
    problems = [p for table in parsed for p in table.problems]
    names = [t.table for t in parsed if t.table]
    problems += [f"table {n} is given twice" for n in sorted(set(names)) if names.count(n) > 1]
    if problems:
        raise Invalid("import refused, nothing was written", problems)
    ensure_tables(engine)
    with refused_values(), engine.begin() as conn:
        current = read_rows(conn)
        candidate = dataclasses.replace(current, **{t.table: t.rows for t in parsed})
        findings = check_rows(candidate, sockets=sockets)
        if findings.errors:
            warnings = [f"warning: {w}" for w in findings.warnings]
            raise Invalid("import refused, nothing was written", [*findings.errors, *warnings])
        check_fits(conn, candidate)
        if not check_only:
            for table in parsed:
                kamailio = KAMAILIO_TABLES[table.table]
                conn.execute(delete(kamailio))
                if table.rows:
                    conn.execute(insert(kamailio), [dataclasses.asdict(r) for r in table.rows])
                sync_sequence(conn, kamailio)
    return {
        "tables": {t.table: len(t.rows) for t in parsed},
        "warnings": list(findings.warnings),
        "written": not check_only,
    }


def export_tables(
    engine: Engine, tables: Collection[str] = tuple(KAMAILIO_TABLES), *, colon: bool = False
) -> dict[str, str]:
    """The given tables as dbtext files (table name → text)."""
    unknown = [t for t in tables if t not in KAMAILIO_TABLES]
    if unknown:
        raise Invalid("export refused", [f"unknown table {t!r}" for t in unknown])
    ensure_tables(engine)
    with engine.connect() as conn:
        rows = read_rows(conn)
    return {t: dump_table(t, getattr(rows, t), colon=colon) for t in tables}
