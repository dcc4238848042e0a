"""Beside the data path: how the ``pks`` command prints — aligned tables for people, JSON
(``--json``) for scripts, errors on stderr with a non-zero exit status."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

import typer

__all__ = ["emit", "fail", "note", "table"]


def note(text: str) -> None:
    """A remark for the operator (stderr, so that ``--json`` output stays parseable)."""
    typer.echo(text, err=True)


def fail(message: str, problems: Iterable[str] = (), code: int = 1) -> NoReturn:
    typer.echo(f"pks: {message}", err=True)
    for line in problems:
        typer.echo(f"  - {line}", err=True)
    raise typer.Exit(code)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return value.get("name") or json.dumps(value)
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Rows as a table with aligned columns (None shown as '-')."""
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def emit(data: Any, as_json: bool, human: Callable[[Any], str]) -> None:
    """Print ``data`` as JSON or through ``human``."""
    typer.echo(json.dumps(data, indent=2, default=str) if as_json else human(data))
