"""Shared fixtures: the database matrix (SQLite, PostgreSQL, MariaDB) — see tests/dbs.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbs import PrivatePostgres, ServerDatabase, unavailable

ENGINES = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.db),
    pytest.param("mariadb", marks=pytest.mark.db),
]


class _Servers:
    """The session's database on each shared server, created on first use."""

    def __init__(self) -> None:
        self.made: dict[str, ServerDatabase] = {}
        self.failed: dict[str, str] = {}

    def get(self, kind: str) -> ServerDatabase:
        if kind in self.failed:
            unavailable(self.failed[kind])
        if kind not in self.made:
            try:
                self.made[kind] = ServerDatabase(kind)
            except RuntimeError as exc:
                self.failed[kind] = f"{exc}; its tests are skipped"
                unavailable(self.failed[kind])
        return self.made[kind]

    def close(self) -> None:
        for database in self.made.values():
            database.drop()


@pytest.fixture(scope="session")
def database_servers() -> Iterator[_Servers]:
    servers = _Servers()
    yield servers
    servers.close()


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, database_servers: _Servers) -> str:
    """The URL of an empty database of each kind (one per session on servers, wiped)."""
    kind = request.param
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'pks.db'}"
    database = database_servers.get(kind)
    database.wipe()
    return database.url


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of our own, to stop and start (outage tests)."""
    try:
        server = PrivatePostgres()
    except (RuntimeError, OSError, KeyError) as exc:
        unavailable(f"cannot start a private PostgreSQL: {exc}")
    yield server
    server.close()
