"""Beside the data path: Kamailio's dbtext table files ↔ rows, as the seed writes them.

A file starts with Kamailio's dbtext header, one ``name(type[,auto][,null])`` per column::

    id(int,auto) grp(int) ip_addr(string) mask(int) port(int) tag(string,null)

then one row per line. Fields are separated by tabs (what :func:`dump_table` writes), or
by runs of spaces as in the seed README, or by ``:`` as in Kamailio's own dbtext files
(a line is split on ``:`` only when it has no tab or space and that gives the header's
column count). In a field, ``\\\\`` is a backslash, ``\\t``, ``\\n``, ``\\r``, ``\\:`` and
``\\<space>`` the characters they name (so the seed's ``^\\\\+33`` is the regex ``^\\+33``);
any other backslash is kept. ``null`` (any case), or an empty field, is NULL — NULL becomes
'' in a column that cannot be NULL. The table is recognised by its columns.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields
from typing import Any

from pks.route.rows import AddressRow, DialplanRow, DispatcherRow

__all__ = ["HEADERS", "ParsedTable", "dump_table", "parse_table"]

HEADERS: dict[str, str] = {
    "address": "id(int,auto) grp(int) ip_addr(string) mask(int) port(int) tag(string,null)",
    "dialplan": "id(int,auto) dpid(int) pr(int) match_op(int) match_exp(string)"
    " match_len(int) subst_exp(string) repl_exp(string) attrs(string)",
    "dispatcher": "id(int,auto) setid(int) destination(string) flags(int) priority(int)"
    " attrs(string) description(string)",
}
_ROWS: dict[str, type[Any]] = {
    "address": AddressRow,
    "dialplan": DialplanRow,
    "dispatcher": DispatcherRow,
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "address": {"mask": 32, "port": 0, "tag": None},
    "dialplan": {"match_len": 0, "subst_exp": "", "repl_exp": "", "attrs": ""},
    "dispatcher": {"flags": 0, "priority": 0, "attrs": "", "description": ""},
}
_COLUMN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\(([a-z]+)((?:,[a-z]+)*)\)")
_UNESCAPE = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r", ":": ":", " ": " "}
_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass(frozen=True, slots=True)
class ParsedTable:
    """One parsed file: the table it holds, its rows, and what was wrong (nothing if ok)."""

    table: str
    rows: tuple[Any, ...]
    problems: tuple[str, ...]


def parse_table(text: str, source: str = "file") -> ParsedTable:
    """Parse one dbtext file; problems name the line and the row id."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        return ParsedTable("", (), (f"{source}: empty file (no dbtext header)",))
    columns = [m.group(1) for m in _COLUMN.finditer(lines[0][1])]
    table = _table_of(columns)
    if table is None:
        return ParsedTable(
            "",
            (),
            (
                f"{source}: line {lines[0][0]}: not a dbtext header of address, dialplan or"
                f" dispatcher (got columns {', '.join(columns) or 'none'})",
            ),
        )
    rows: list[Any] = []
    problems: list[str] = []
    for number, line in lines[1:]:
        if line.lstrip().startswith("#"):
            continue
        values = _split(line, len(columns))
        where = f"{table} line {number}"
        if len(values) != len(columns):
            problems.append(f"{where}: {len(values)} fields, the header has {len(columns)}")
            continue
        row = _row(table, dict(zip(columns, values, strict=True)), where, problems)
        if row is not None:
            rows.append(row)
    seen: set[int] = set()
    for row in rows:
        if row.id in seen:
            problems.append(f"{table} id {row.id}: the id appears twice")
        seen.add(row.id)
    return ParsedTable(table, tuple(rows), tuple(problems))


def dump_table(table: str, rows: Iterable[Any], *, colon: bool = False) -> str:
    """Rows → a dbtext file (tab-separated; ``colon=True``: Kamailio's ``:`` format)."""
    out = [HEADERS[table]]
    for row in rows:
        cells = [_cell(v, colon) for v in astuple(row)]
        out.append((":" if colon else "\t").join(cells))
    return "\n".join(out) + "\n"


def _cell(value: Any, colon: bool) -> str:
    if value is None:
        return "" if colon else "null"
    text = str(value).translate(_ESCAPE)
    if colon:
        text = text.replace(":", "\\:")
    return text


def _table_of(columns: list[str]) -> str | None:
    if "ip_addr" in columns:
        return "address"
    if "match_exp" in columns:
        return "dialplan"
    if "destination" in columns:
        return "dispatcher"
    return None


def _split(line: str, count: int) -> list[str | None]:
    if "\t" in line:
        raw = line.rstrip("\r\n").split("\t")
    else:
        raw = _split_unescaped(line.strip(), " ")
        if len(raw) != count and " " not in line.strip():
            raw = _split_unescaped(line.strip(), ":")
    return [_value(cell) for cell in raw]


def _split_unescaped(line: str, sep: str) -> list[str]:
    cells, current, i = [], [], 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            current.append(line[i : i + 2])
            i += 2
            continue
        if c == sep:
            if sep != " " or current:
                cells.append("".join(current))
            current = []
        else:
            current.append(c)
        i += 1
    cells.append("".join(current))
    return cells


def _value(cell: str) -> str | None:
    if cell == "" or cell.lower() == "null":
        return None
    out, i = [], 0
    while i < len(cell):
        if cell[i] == "\\" and i + 1 < len(cell) and cell[i + 1] in _UNESCAPE:
            out.append(_UNESCAPE[cell[i + 1]])
            i += 2
        else:
            out.append(cell[i])
            i += 1
    return "".join(out)


def _row(table: str, values: dict[str, str | None], where: str, problems: list[str]) -> Any:
    kinds = {f.name: f.type for f in fields(_ROWS[table])}
    out: dict[str, Any] = {}
    before = len(problems)
    ident = values.get("id")
    if ident is not None and ident.strip().lstrip("-").isdigit():
        where = f"{table} id {ident} (line {where.rsplit(' ', 1)[-1]})"
    for name in kinds:
        value = values.get(name, _DEFAULTS[table].get(name))
        if name not in values and name not in _DEFAULTS[table] and name != "id":
            problems.append(f"{where}: column {name} is missing from the header")
            continue
        if "int" in str(kinds[name]):
            if value is None or not str(value).strip().lstrip("+-").isdigit():
                problems.append(f"{where}: {name} is {value!r}, not an integer")
                continue
            out[name] = int(value)
        else:
            nullable = "None" in str(kinds[name])
            out[name] = value if value is not None or nullable else ""
    if len(problems) > before:
        return None
    return _ROWS[table](**out)
