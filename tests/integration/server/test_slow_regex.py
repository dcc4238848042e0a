"""A dialplan rule whose regex can take exponential time fails the reload like an invalid
one: the error names the rule, the old snapshot keeps routing (docs/security.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dbs import execute
from pks.db import make_engine, migrate
from pks.server import Server
from servers import free_port, running_server

HOST = "127.0.0.44"


@pytest.fixture
async def server(db_url: str) -> AsyncIterator[Server]:
    engine = make_engine(db_url)
    migrate.init(engine)
    engine.dispose()
    execute(
        db_url,
        "INSERT INTO address (grp, ip_addr, mask, port, tag) VALUES (2, '127.0.0.45', 32, 0, 'c')",
        "INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp,"
        " attrs) VALUES (1, 1, 1, '^33', 0, '', '', '7')",
        "INSERT INTO dispatcher (setid, destination) VALUES (7, 'sip:127.0.0.46:5060')",
    )
    async with running_server(f"udp:{HOST}:{free_port(HOST)}", db_url) as srv:
        yield srv


async def test_exponential_regex_rejects_reload_and_keeps_old_snapshot(
    server: Server, db_url: str
) -> None:
    before = server.snapshot
    execute(
        db_url,
        "INSERT INTO dialplan (id, dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp,"
        " attrs) VALUES (98, 2, 1, 1, '^(3+)+$', 0, '', '', '7')",
    )
    result = await server.reload()
    assert not result.ok
    assert "dialplan id 98: match_exp '^(3+)+$' can take exponential time" in result.message
    assert server.snapshot is before
    execute(db_url, "UPDATE dialplan SET match_exp = '^3+$' WHERE id = 98")
    result = await server.reload()
    assert result.ok and server.snapshot is not before
