"""Reading call records back: ``GET /api/v1/cdrs`` and ``pks cdr tail|export``.

From the database sink's ``pks_cdr`` table when ``db`` is a sink, else from the file sink's
JSON lines (read whole: for a large file, prefer the database or rotate the file). Filters:
source peer tag, number prefix (caller or called), time range (on ``start``), status.
Blocking (worker thread or CLI).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pks.cdr.fields import FIELDS, iso, parse_time

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from pks.config import Settings

__all__ = ["Filters", "NoStore", "search"]

STATUSES = ("answered", "failed", "cancelled", "rejected")
_engines: dict[str, Engine] = {}  # one per database read (the API's reads share it)


class NoStore(LookupError):
    """No sink the records can be read back from (neither db nor file)."""


@dataclass(frozen=True, slots=True)
class Filters:
    peer: str | None = None
    number: str | None = None  # a prefix of the caller's or the called number
    since: float | None = None  # Unix seconds, on start (inclusive)
    until: float | None = None  # exclusive
    status: str | None = None
    limit: int = 100  # 0: all
    newest_first: bool = True

    def admits(self, record: dict[str, Any]) -> bool:
        """The file store's filter (the database's is SQL)."""
        if self.peer is not None and record.get("peer") != self.peer:
            return False
        if self.status is not None and record.get("status") != self.status:
            return False
        if self.number is not None and not any(
            (record.get(key) or "").startswith(self.number) for key in ("caller", "called")
        ):
            return False
        if self.since is not None or self.until is not None:
            start = parse_time(record["start"])
            if self.since is not None and start < self.since:
                return False
            if self.until is not None and start >= self.until:
                return False
        return True


def search(settings: Settings, filters: Filters) -> list[dict[str, Any]]:
    """The records matching ``filters``, newest or oldest first, at most ``limit``."""
    sinks = settings.cdr_sink_names
    if "db" in sinks:
        return _from_db(settings.cdr_db_url or settings.db_url, filters)
    if "file" in sinks and settings.cdr_file:
        return _from_file(Path(settings.cdr_file), filters)
    raise NoStore("call records are read back from the db or file sink: PKS_CDR_SINKS has neither")


def _from_file(path: Path, filters: Filters) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    try:
        with path.open("rb") as file:
            for line in file:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line being written
                if filters.admits(record):
                    found.append(record)
    except FileNotFoundError:
        return []
    found.sort(key=lambda r: r["start"], reverse=filters.newest_first)
    return found[: filters.limit] if filters.limit else found


def _naive_utc(when: float) -> datetime:
    return datetime.fromtimestamp(when, UTC).replace(tzinfo=None)


def _iso_of(value: datetime | None) -> str | None:
    return None if value is None else iso(value.replace(tzinfo=UTC).timestamp())


def _from_db(url: str, filters: Filters) -> list[dict[str, Any]]:
    from sqlalchemy import or_, select

    from pks.db.engine import make_engine
    from pks.db.own import pks_cdr as t

    query = select(t)
    if filters.peer is not None:
        query = query.where(t.c.peer == filters.peer)
    if filters.status is not None:
        query = query.where(t.c.status == filters.status)
    if filters.number is not None:
        prefix = filters.number.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(
            or_(
                t.c.caller.like(prefix + "%", escape="\\"),
                t.c.called.like(prefix + "%", escape="\\"),
            )
        )
    if filters.since is not None:
        query = query.where(t.c.start_time >= _naive_utc(filters.since))
    if filters.until is not None:
        query = query.where(t.c.start_time < _naive_utc(filters.until))
    order = t.c.start_time.desc() if filters.newest_first else t.c.start_time.asc()
    query = query.order_by(order, t.c.id)
    if filters.limit:
        query = query.limit(filters.limit)
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [_record(dict(row)) for row in rows]


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A ``pks_cdr`` row → the record as the other sinks carry it."""
    row["start"] = _iso_of(row.pop("start_time"))
    row["answer"] = _iso_of(row.pop("answer_time"))
    row["end"] = _iso_of(row.pop("end_time"))
    row["attempts"] = json.loads(row["attempts"]) if row.get("attempts") else []
    return {key: row.get(key) for key in FIELDS}
