"""A call record as written: one flat JSON object per call, the same for every sink.

Made in two steps. On the proxy's event loop, :func:`pks.cdr.record.pack` turns a finished
:class:`pks.cdr.record.CallRecord` into a list of plain values (the core's times made
wall-clock, the refused calls given their source's peer tag from the routing snapshot; no
formatting, no I/O), encoded as one JSON array that the writer thread spools; the delivery
process (:mod:`pks.cdr.deliver`) expands (:func:`expand`) that into the record as sinks get it:
times in ISO 8601 (UTC, milliseconds), durations, the attempts with their codes, and an
``id`` (a UUID fixed in the spool) that sinks use to recognise a record delivered twice
(delivery is at least once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

__all__ = ["FIELDS", "Packed", "expand", "iso", "parse_time", "seconds_text"]

FIELDS: tuple[str, ...] = (
    "id",
    "call_id",
    "status",
    "start",
    "answer",
    "end",
    "duration",
    "setup",
    "caller",
    "called",
    "peer",
    "source",
    "setid",
    "gateway",
    "attempts",
    "code",
    "reason",
    "ended_by",
    "from_tag",
    "to_tag",
    "worker",
)
"""The keys of a record, in the order of ``pks cdr export --format csv``'s columns.

``start`` (the INVITE reached us), ``answer`` (the 2xx went to the caller; null when not
answered), ``end`` (the BYE, or the final response of an unanswered call); ``duration`` the
seconds from answer to end (0 when not answered), ``setup`` from start to the answer or to the
final; ``gateway`` the last gateway tried; ``attempts`` each gateway tried, in order, with the
final code it ended with and when (``at``); ``ended_by`` caller, callee, expired (no BYE within
PKS_CALL_MAX_DURATION), stopped (the proxy stopped), proxy (refused), or null.
"""


def seconds_text(fmt: str, split: Callable[[float], time.struct_time]) -> Callable[[int], str]:
    """Whole Unix seconds → ``time.strftime(fmt, split(seconds))``, each second's text made
    once: the records of a batch share a few seconds, and the formatting costs more than
    the rest of a row."""
    cache: dict[int, str] = {}

    def text(seconds: int) -> str:
        made = cache.get(seconds)
        if made is None:
            if len(cache) >= 4096:
                cache.clear()
            made = cache[seconds] = time.strftime(fmt, split(seconds))
        return made

    return text


_iso_seconds = seconds_text("%Y-%m-%dT%H:%M:%S", time.gmtime)


def iso(when: float | None) -> str | None:
    """Unix seconds → ISO 8601, UTC, to the millisecond (``2027-01-15T08:01:40.250Z``)."""
    if when is None:
        return None
    seconds, ms = divmod(int(when * 1000), 1000)
    return f"{_iso_seconds(seconds)}.{ms:03d}Z"


def parse_time(text: str) -> float:
    """An ISO 8601 time (``Z``, an offset or none: UTC), a date, or Unix seconds → Unix
    seconds."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class Packed(NamedTuple):
    """A spooled record, as the delivery process reads it back (:func:`pks.cdr.record.pack`'s
    order)."""

    id: str
    call_id: str
    status: str
    start: float
    answer: float | None
    end: float | None
    caller: str | None
    called: str | None
    peer: str | None
    host: str
    port: int
    setid: int
    tried: list[list[Any]]  # [gateway URI, when its branch opened]
    codes: list[int]
    code: int
    reason: str
    ended_by: str
    from_tag: str
    to_tag: str | None
    worker: int | None

    @property
    def duration(self) -> float:
        """Seconds from the answer to the end (0 when not answered)."""
        answer, end = self.answer, self.end
        return round(end - answer, 3) if answer is not None and end is not None else 0

    @property
    def setup(self) -> float | None:
        """Seconds from the INVITE to the answer or to the final."""
        settled = self.answer if self.answer is not None else self.end
        return round(settled - self.start, 3) if settled is not None else None

    @property
    def source(self) -> str:
        host, port = self.host, self.port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def attempts(self) -> list[dict[str, Any]]:
        codes = self.codes
        return [
            {"gateway": uri, "code": codes[i] if i < len(codes) else None, "at": iso(at)}
            for i, (uri, at) in enumerate(self.tried)
        ]


def expand(p: Packed) -> dict[str, Any]:
    """The JSON object of a record spooled by :func:`pack`."""
    return {
        "id": p.id,
        "call_id": p.call_id,
        "status": p.status or "failed",  # "" : replaced by a new INVITE of its dialog
        "start": iso(p.start),
        "answer": iso(p.answer),
        "end": iso(p.end),
        "duration": p.duration,
        "setup": p.setup,
        "caller": p.caller,
        "called": p.called,
        "peer": p.peer,
        "source": p.source,
        "setid": p.setid or None,
        "gateway": p.tried[-1][0] if p.tried else None,
        "attempts": p.attempts,
        "code": p.code or None,
        "reason": p.reason or None,
        "ended_by": p.ended_by or None,
        "from_tag": p.from_tag or None,
        "to_tag": p.to_tag,
        "worker": p.worker,
    }
