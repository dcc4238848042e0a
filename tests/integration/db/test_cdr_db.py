"""Call records in the database, on every engine: migration 0004 (pks_cdr, Kamailio's acc
when absent, with its version row), the database sink (a batch delivered twice is written
once) and reading them back with filters."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, inspect

from dbs import execute, query
from pks.cdr.fields import Packed
from pks.cdr.query import Filters, search
from pks.cdr.sinks import DbSink
from pks.config import Settings
from pks.db import ensure_schema, make_engine, migrate


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


T0 = 1_801_476_000.0  # 2027-02-01T10:00:00Z


def rec(n: int, **values: object) -> Packed:
    """A record as the delivery process reads it from the spool."""
    base: dict[str, object] = {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "call_id": f"call-{n}",
        "status": "answered",
        "start": T0 + n + 0.25,
        "answer": T0 + n + 0.75,
        "end": T0 + 60 + n + 0.75,
        "caller": "0140000000",
        "called": f"3361234{n:04d}",
        "peer": "pbx1",
        "host": "192.0.2.10",
        "port": 5060,
        "setid": 21,
        "tried": [["sip:192.0.2.20", T0]],
        "codes": [200],
        "code": 200,
        "reason": "OK",
        "ended_by": "caller",
        "from_tag": f"ft{n}",
        "to_tag": f"tt{n}",
        "worker": None,
    }
    base.update(values)
    return Packed(**base)  # type: ignore[arg-type]


def test_migration_creates_pks_cdr_and_acc_with_its_version(engine: Engine, db_url: str) -> None:
    migrate.init(engine)
    with engine.connect() as conn:
        found = inspect(conn)
        assert {"pks_cdr", "acc"} <= set(found.get_table_names())
        acc_columns = [c["name"] for c in found.get_columns("acc")]
        indexes = {i["name"] for i in found.get_indexes("acc")}
    assert acc_columns == [
        "id",
        "method",
        "from_tag",
        "to_tag",
        "callid",
        "sip_code",
        "sip_reason",
        "time",
    ]
    mysql = db_url.startswith("mysql")
    assert ("callid_idx" if mysql else "acc_callid_idx") in indexes
    assert query(db_url, "SELECT table_version FROM version WHERE table_name = 'acc'") == [(5,)]


def test_an_existing_acc_table_is_left_alone(engine: Engine, db_url: str) -> None:
    ensure_schema(engine)
    execute(
        db_url,
        "CREATE TABLE acc (id INTEGER PRIMARY KEY, callid VARCHAR(255))",
        "INSERT INTO acc (id, callid) VALUES (1, 'kamailio-call')",
    )
    migrate.upgrade(engine)
    assert query(db_url, "SELECT id, callid FROM acc") == [(1, "kamailio-call")]
    assert query(db_url, "SELECT COUNT(*) FROM version WHERE table_name = 'acc'") == [(0,)]


def test_db_sink_writes_once_and_reads_back_filtered(engine: Engine, db_url: str) -> None:
    migrate.init(engine)
    sink = DbSink(db_url)
    failed = rec(
        3,
        status="failed",
        answer=None,
        code=503,
        to_tag=None,
        reason="Service Unavailable",
        ended_by=None,
        peer="carrier",
        called="33140000000",
    )
    batch = [rec(1), rec(2), failed]
    sink.deliver(batch)
    sink.deliver(batch)  # delivered again (a crash before the cursor moved): skipped
    sink.close()
    assert query(db_url, "SELECT COUNT(*) FROM pks_cdr") == [(3,)]
    acc = query(db_url, "SELECT method, callid, sip_code, from_tag FROM acc ORDER BY id")
    assert acc == [
        ("INVITE", "call-1", "200", "ft1"),
        ("BYE", "call-1", "200", "ft1"),
        ("INVITE", "call-2", "200", "ft2"),
        ("BYE", "call-2", "200", "ft2"),
        ("INVITE", "call-3", "503", "ft3"),
    ]
    settings = Settings(db_url=db_url, cdr_sinks="db")
    newest = search(settings, Filters(limit=2))
    assert [r["call_id"] for r in newest] == ["call-3", "call-2"]
    assert newest[1]["start"] == "2027-02-01T10:00:02.250Z"
    assert newest[1]["attempts"][0]["code"] == 200 and newest[0]["to_tag"] is None
    assert [r["call_id"] for r in search(settings, Filters(peer="carrier"))] == ["call-3"]
    assert [
        r["call_id"] for r in search(settings, Filters(status="answered", newest_first=False))
    ] == ["call-1", "call-2"]
    assert [r["call_id"] for r in search(settings, Filters(number="3314"))] == ["call-3"]
    since = Filters(since=1801476002.0, until=1801476003.0)  # 10:00:02 to 10:00:03 UTC
    assert [r["call_id"] for r in search(settings, since)] == ["call-2"]
