"""Change detection: the fingerprint sees inserts, in-place updates and deletes on every
engine; PostgreSQL's triggers notify every change, by anyone, on the pks_changes channel."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine

from dbs import execute
from pks.db import make_engine, migrate
from pks.db.watch import CHANNEL, WATCHED, fingerprint, install_triggers

CHANGES = [
    "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (1, '10.0.0.1', 32, 0, 'a')",
    "UPDATE address SET port = 5060",
    "INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp, attrs)"
    " VALUES (1, 1, 1, '^33', 0, '', '', '7')",
    "UPDATE dialplan SET match_exp = '^34'",
    "INSERT INTO dispatcher (setid, destination) VALUES (7, 'sip:10.0.0.2')",
    "UPDATE dispatcher SET flags = 2",
    "INSERT INTO pks_peer (kind, name, tag, setid) VALUES ('customer', 'acme', 'a', 7)",
    "UPDATE pks_peer SET max_calls = 10",
    "INSERT INTO pks_set (setid, algorithm) VALUES (7, 'hash')",
    "UPDATE pks_set SET algorithm = 'round-robin'",
    "DELETE FROM pks_set",
    "DELETE FROM address",
]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate.init(engine)
    yield engine
    engine.dispose()


def test_every_change_changes_the_fingerprint(engine: Engine, db_url: str) -> None:
    seen = [fingerprint(engine)]
    assert fingerprint(engine) == seen[0]  # stable while nothing changes
    for statement in CHANGES:
        execute(db_url, statement)
        current = fingerprint(engine)
        assert current != seen[-1], statement
        seen.append(current)
    assert seen[0][0] == WATCHED


def test_fingerprint_of_a_pure_kamailio_database(db_url: str) -> None:
    from pks.db import ensure_schema

    engine = make_engine(db_url)
    ensure_schema(engine)
    tables, digests = fingerprint(engine)
    assert tables == ("address", "dialplan", "dispatcher") and len(digests) == 3
    engine.dispose()


@pytest.mark.db
def test_triggers_notify_changes_made_by_anyone(database_servers) -> None:  # type: ignore[no-untyped-def]
    database = database_servers.get("postgresql")
    database.wipe()
    engine = make_engine(database.url)
    migrate.init(engine)
    assert install_triggers(engine) == list(WATCHED)  # idempotent
    _, params = engine.dialect.create_connect_args(engine.url)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        execute(database.url, *CHANGES[:3], "TRUNCATE pks_set")  # one transaction
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=3)]
    assert sorted(got) == ["address", "dialplan", "pks_set"]  # once per table and transaction
    engine.dispose()
