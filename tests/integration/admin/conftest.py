"""The real server in-process (UDP on loopback, admin API on a free port) on each database
engine (SQLite, PostgreSQL, MariaDB: the ``db_url`` fixture), and an HTTP client talking to
it over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pks.db.engine import make_engine
from pks.provision.transfer import import_tables
from pks.server import Server
from servers import free_port, running_server

HOST = "127.0.0.51"

SEED = Path(__file__).parents[2] / "cli" / "seed"  # the seed README's tables, verbatim
SEED_ADDRESS = (SEED / "address").read_text()
SEED_DIALPLAN = (SEED / "dialplan").read_text()
SEED_DISPATCHER = (SEED / "dispatcher").read_text()
# the seed's two defects corrected: match_len 0 for row 1, an escaped and anchored '+' in row 2
FIXED_DIALPLAN = SEED_DIALPLAN.replace("[0-9]$ 1 0 0 23", "[0-9]$ 0 0 0 23").replace(
    "2 2 1 1 +33", "2 2 1 1 ^\\\\+33"
)


@pytest.fixture
def seeded_url(db_url: str) -> str:
    """The seed's three tables, corrected; socket 'ipbx' exists on the test server."""
    files = {"a": SEED_ADDRESS, "d": FIXED_DIALPLAN, "g": SEED_DISPATCHER}
    engine = make_engine(db_url)
    import_tables(engine, files)
    engine.dispose()
    return db_url


@pytest.fixture
async def server(seeded_url: str) -> AsyncIterator[Server]:
    async with running_server(f"udp:{HOST}:{free_port(HOST)};name=ipbx", seeded_url) as srv:
        yield srv


@pytest.fixture
async def api(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    base = f"http://{server.settings.admin_listen}"
    # the API takes writes as JSON only; httpx says so only when it sends a json= body
    headers = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        yield client
