"""Beside the data path: the snapshot cache (``PKS_SNAPSHOT_CACHE``), the rows of the last
good load in a JSON file, so that a proxy can start while its database is down.

Rows are kept, not compiled objects: the cache is rebuilt with the running version's
``build_snapshot`` and stays readable across upgrades. Written atomically (temporary file in
the same directory, fsync, rename): a crash leaves the previous file whole.

Blocking code: the server calls it in a worker thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from pks.route.rows import (
    AddressRow,
    BanRow,
    BlockRow,
    DialplanRow,
    DispatcherRow,
    PeerRow,
    SetRow,
    TableRows,
)

__all__ = ["FORMAT", "CacheError", "read_cache", "write_cache"]

FORMAT = "pks-snapshot-cache/1"

_TABLES: dict[str, type[Any]] = {
    "address": AddressRow,
    "dialplan": DialplanRow,
    "dispatcher": DispatcherRow,
    "peers": PeerRow,
    "sets": SetRow,
    "bans": BanRow,
    "blocks": BlockRow,
}


class CacheError(ValueError):
    """The cache file is missing, unreadable or not one we wrote."""


def write_cache(path: str | Path, rows: TableRows, source: str) -> None:
    """Store ``rows`` (read from ``source``, a URL without password) in ``path``."""
    target = Path(path)
    document = {
        "format": FORMAT,
        "written_at": time.time(),
        "source": source,
        "tables": {
            name: [dataclasses.asdict(row) for row in getattr(rows, name)] for name in _TABLES
        },
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, separators=(",", ":"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_cache(path: str | Path) -> tuple[TableRows, float, str]:
    """(rows, time written, source) from ``path``; :class:`CacheError` saying what is wrong."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CacheError(f"snapshot cache {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise CacheError(f"cannot read snapshot cache {path}: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CacheError(f"{path} is not a pks snapshot cache ({FORMAT})")
    tables = document.get("tables")
    if not isinstance(tables, dict):
        raise CacheError(f"snapshot cache {path}: no tables")
    values: dict[str, tuple[Any, ...]] = {}
    for name, kind in _TABLES.items():
        items = tables.get(name, [])
        try:
            values[name] = tuple(_row(kind, item) for item in items)
        except (TypeError, ValueError) as exc:
            raise CacheError(f"snapshot cache {path}: bad {name} row: {exc}") from None
    written = document.get("written_at")
    source = document.get("source")
    return (
        TableRows(**values),
        float(written) if isinstance(written, int | float) else 0.0,
        str(source or "?"),
    )


def _row(kind: type[Any], item: object) -> Any:
    if not isinstance(item, dict):
        raise TypeError(f"{item!r} is not an object")
    row = kind(**item)
    for field in dataclasses.fields(kind):
        value = getattr(row, field.name)
        wanted = field.type if isinstance(field.type, str) else field.type.__name__
        if not _fits(value, wanted):
            raise ValueError(f"{field.name}={value!r} is not {wanted}")
    return row


def _fits(value: object, wanted: str) -> bool:
    options = [part.strip() for part in wanted.split("|")]
    for option in options:
        if option == "None" and value is None:
            return True
        if option == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option == "str" and isinstance(value, str):
            return True
    return False
