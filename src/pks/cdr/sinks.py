"""Where call records go: a JSON-lines file, an HTTP webhook, the database (``pks_cdr`` and
Kamailio's ``acc``).

A sink takes a batch of records — their JSON objects (:func:`pks.cdr.fields.expand`) — and
either takes all of them or raises: the batch is then offered again, later (exponential
backoff). Each sink runs in its own thread of the delivery process (:mod:`pks.cdr.deliver`),
never in the proxy's.
Delivery is at least once; the database sink skips records it already holds (by ``id``), a
webhook receiver can do the same with each record's ``id``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson

from pks.cdr.fields import Packed, expand, seconds_text

if TYPE_CHECKING:
    from sqlalchemy import Table

__all__ = [
    "DbSink",
    "FileSink",
    "Sink",
    "WebhookSink",
    "acc_rows",
    "cdr_row",
    "make_sinks",
]


class Sink(Protocol):
    name: str

    def deliver(self, records: list[Packed]) -> None:
        """Take every record of ``records`` or raise."""

    def close(self) -> None: ...


class FileSink:
    """Appends to a JSON-lines file (``PKS_CDR_FILE``), one write and one fsync per batch.

    Opened with O_APPEND: worker processes share the file, a batch never splits a line. A file
    moved away (logrotate) is noticed at the next batch and a new one is started."""

    name = "file"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._ino: tuple[int, int] | None = None

    def _open(self) -> int:
        try:
            st = os.stat(self.path)
            here: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            here = None
        if self._fd is not None and here != self._ino:
            os.close(self._fd)  # rotated: the old file is someone else's now
            self._fd = None
        if self._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
            self._fd = os.open(self.path, flags, 0o640)
            st = os.fstat(self._fd)
            self._ino = (st.st_dev, st.st_ino)
        return self._fd

    def deliver(self, records: list[Packed]) -> None:
        fd = self._open()
        view = memoryview(
            b"".join(orjson.dumps(expand(r), option=orjson.OPT_APPEND_NEWLINE) for r in records)
        )
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class WebhookSink:
    """POSTs each batch as one JSON array to ``PKS_CDR_WEBHOOK_URL``; any 2xx takes it, any
    other answer or no answer within ``timeout`` is a failure (the batch comes again)."""

    name = "webhook"

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url
        headers = {"Content-Type": "application/json", "User-Agent": "pks-sip-proxy cdr"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(headers=headers, timeout=timeout)

    def deliver(self, records: list[Packed]) -> None:
        body = orjson.dumps([expand(r) for r in records])
        resp = self._client.post(self.url, content=body)
        if not 200 <= resp.status_code < 300:
            raise RuntimeError(f"{self.url} answered {resp.status_code} {resp.text[:200]!r}")

    def close(self) -> None:
        self._client.close()


def _cut(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]


Stamp = Callable[[float], Any]  # Unix seconds → a time column's value for the driver


def utc_datetime(when: float) -> datetime:
    """A naive UTC datetime (how ``pks_cdr`` stores times)."""
    return datetime.fromtimestamp(when, UTC).replace(tzinfo=None)


def local_datetime(when: float) -> datetime:
    """The naive local time Kamailio's acc module writes."""
    return datetime.fromtimestamp(when)


def _sqlite_stamp(split: Callable[[float], time.struct_time]) -> Stamp:
    """SQLite has no time type: the text SQLAlchemy's DateTime reads back, made directly
    (its own conversion costs more than the insert)."""
    text = seconds_text("%Y-%m-%d %H:%M:%S", split)

    def stamp(when: float) -> str:
        seconds, micro = divmod(round(when * 1_000_000), 1_000_000)
        return f"{text(seconds)}.{micro:06d}"

    return stamp


def cdr_row(p: Packed, utc: Stamp = utc_datetime) -> tuple[Any, ...]:
    """The ``pks_cdr`` row of a record, in its table's column order."""
    answer, end = p.answer, p.end
    return (
        p.id,
        p.call_id[:255],
        p.status or "failed",
        utc(p.start),
        None if answer is None else utc(answer),
        None if end is None else utc(end),
        p.duration,
        p.setup,
        _cut(p.caller, 64),
        _cut(p.called, 64),
        _cut(p.peer, 64),
        p.source[:64],
        p.setid or None,
        _cut(p.tried[-1][0], 192) if p.tried else None,
        orjson.dumps(p.attempts).decode(),
        p.code or None,
        _cut(p.reason or None, 128),
        p.ended_by or None,
        _cut(p.from_tag or None, 128),
        _cut(p.to_tag, 128),
        p.worker,
    )


def acc_rows(p: Packed, local: Stamp = local_datetime) -> list[tuple[Any, ...]]:
    """The ``acc`` rows (its table's columns but ``id``) Kamailio's acc module writes for the call
    (with its failed-transaction flag set): the INVITE's final — at the answer, or at the
    end of an unanswered call — and, once answered, the BYE, with the tags as the BYE carried
    them (the callee's first when the callee hung up)."""
    from_tag = (p.from_tag or "")[:128]
    to_tag = (p.to_tag or "")[:128]
    call_id = p.call_id[:255]
    answer, end = p.answer, p.end
    when = answer if answer is not None else end if end is not None else p.start
    rows = [
        (
            "INVITE",
            from_tag,
            to_tag,
            call_id,
            str(p.code or 0)[:3],
            (p.reason or "")[:128],
            local(when),
        )
    ]
    if answer is not None and end is not None and p.ended_by in ("caller", "callee"):
        tags = (from_tag, to_tag) if p.ended_by == "caller" else (to_tag, from_tag)
        rows.append(("BYE", *tags, call_id, "200", "OK", local(end)))
    return rows


def _insert(table: Table, paramstyle: str) -> str:
    """The driver-level INSERT of ``table``'s columns but a generated key (``acc.id``), the
    SQL text made once from constant names: every value goes as a bound parameter."""
    columns = [c.name for c in table.columns if not c.primary_key or c.autoincrement is False]
    mark = "?" if paramstyle == "qmark" else "%s"
    names, marks = ", ".join(columns), ", ".join([mark] * len(columns))
    return f"INSERT INTO {table.name} ({names}) VALUES ({marks})"


class DbSink:
    """Inserts ``pks_cdr`` and ``acc`` rows (``PKS_CDR_DB_URL``, else ``PKS_DB_URL``), one
    transaction per batch; records already there (same ``id``: a batch delivered again) are
    skipped. Its tables are created when absent (as migration 0004 does), never altered.

    The rows go to the driver's ``executemany`` as tuples: building them through SQLAlchemy's
    statement layer cost several times the insert itself."""

    name = "db"

    def __init__(self, url: str, acc: bool = True) -> None:
        from pks.db.acc import acc as acc_table
        from pks.db.acc import pks_cdr
        from pks.db.engine import make_engine

        self.engine = make_engine(url)
        self.acc = acc
        self._ready = False  # tables checked (created when absent)
        dialect = self.engine.dialect
        self._cdr_sql = _insert(pks_cdr, dialect.paramstyle)
        self._acc_sql = _insert(acc_table, dialect.paramstyle)
        if dialect.name == "sqlite":
            self._utc, self._local = _sqlite_stamp(time.gmtime), _sqlite_stamp(time.localtime)
        else:
            self._utc, self._local = utc_datetime, local_datetime

    def deliver(self, records: list[Packed]) -> None:
        from sqlalchemy import select

        from pks.db.acc import ensure_tables, pks_cdr

        if not self._ready:
            with self.engine.begin() as conn:
                ensure_tables(conn, self.acc)
            self._ready = True
        with self.engine.begin() as conn:
            ids = [r.id for r in records]
            seen = set(conn.execute(select(pks_cdr.c.id).where(pks_cdr.c.id.in_(ids))).scalars())
            fresh = [r for r in records if r.id not in seen]
            if not fresh:
                return
            utc, local = self._utc, self._local
            conn.exec_driver_sql(self._cdr_sql, [cdr_row(r, utc) for r in fresh])
            if self.acc:
                rows = [row for r in fresh for row in acc_rows(r, local)]
                conn.exec_driver_sql(self._acc_sql, rows)

    def close(self) -> None:
        self.engine.dispose()


def make_sinks(
    names: tuple[str, ...],
    *,
    file: str | None,
    webhook_url: str | None,
    webhook_token: str | None,
    webhook_timeout: float,
    db_url: str,
) -> list[Sink]:
    sinks: list[Sink] = []
    for name in names:
        if name == "file":
            assert file is not None
            sinks.append(FileSink(file))
        elif name == "webhook":
            assert webhook_url is not None
            sinks.append(WebhookSink(webhook_url, webhook_token, webhook_timeout))
        elif name == "db":
            sinks.append(DbSink(db_url))
    return sinks
