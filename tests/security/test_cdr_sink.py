"""Call records carry strings an authorized peer chooses — Call-ID, tags, numbers, the
reason phrase — into the database sink, which builds its SQL text itself (driver-level
``executemany``, pks.cdr.sinks). Hostile ones (quotes, a statement terminator, comment
marks, the drivers' own placeholder syntax) must arrive as data, on every engine."""

from __future__ import annotations

from dbs import query
from pks.cdr.fields import Packed
from pks.cdr.sinks import DbSink
from pks.db import make_engine, migrate

HOSTILE = "x'); DROP TABLE acc; -- %s %(id)s ? \\ \" `"


def test_hostile_record_strings_are_stored_as_data(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.init(engine)
    engine.dispose()
    record = Packed(
        id="00000000-0000-4000-8000-000000000001",
        call_id=HOSTILE,
        status="failed",
        start=1_801_476_000.0,
        answer=None,
        end=1_801_476_001.0,
        caller=HOSTILE[:60],
        called="33%s",
        peer=None,
        host="192.0.2.1",
        port=5060,
        setid=21,
        tried=[[f"sip:{HOSTILE}@192.0.2.9", 1_801_476_000.0]],
        codes=[503],
        code=503,
        reason=HOSTILE,
        ended_by="",
        from_tag=HOSTILE,
        to_tag=None,
        worker=None,
    )
    sink = DbSink(db_url)
    sink.deliver([record])
    sink.close()
    assert query(db_url, "SELECT call_id, caller, called, reason, from_tag FROM pks_cdr") == [
        (HOSTILE, HOSTILE[:60], "33%s", HOSTILE, HOSTILE)
    ]
    assert query(db_url, "SELECT callid, sip_reason, from_tag FROM acc") == [
        (HOSTILE, HOSTILE, HOSTILE)
    ]
