"""Test databases: SQLite files, and private databases on the shared PostgreSQL and MariaDB
servers, plus a throw-away PostgreSQL server for outage tests.

Servers (standard local ports, override with ``PKS_TEST_POSTGRESQL`` / ``PKS_TEST_MARIADB``):

- PostgreSQL ``postgresql://postgres@127.0.0.1:5432`` (trust authentication);
- MariaDB/MySQL ``mysql://root@127.0.0.1:3306`` (root without password).

Each test session creates its own database ``pks_t_<random hex>`` on each server and drops it
at the end; the databases ``postgres``, ``test`` and ``root`` are never touched. An absent
server skips its tests with a message saying so, except with ``CI=true`` where it fails.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

SERVERS = {
    "postgresql": os.environ.get("PKS_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432"),
    "mariadb": os.environ.get("PKS_TEST_MARIADB", "mysql://root@127.0.0.1:3306"),
}
_ADMIN_DB = {"postgresql": "postgres", "mariadb": ""}
_DRIVERS = {"postgresql": "postgresql+psycopg", "mariadb": "mysql+pymysql"}
PG_BIN = Path(os.environ.get("PKS_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def unavailable(reason: str) -> None:
    """Skip, or fail when ``CI`` is set (a CI machine must run every database test)."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is an error)", pytrace=False)
    pytest.skip(reason)


def _admin_engine(kind: str) -> Engine:
    url = make_url(SERVERS[kind]).set(drivername=_DRIVERS[kind], database=_ADMIN_DB[kind])
    args = {"connect_timeout": 3}
    if kind == "postgresql":
        return create_engine(url, isolation_level="AUTOCOMMIT", connect_args=args)
    return create_engine(url, connect_args=args)


class ServerDatabase:
    """One ``pks_t_<hex>`` database on a shared server, for one test session."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = f"pks_t_{secrets.token_hex(6)}"
        self._admin = _admin_engine(kind)
        try:
            with self._admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {self.name}"))
                conn.commit()
        except Exception as exc:
            self._admin.dispose()
            where = make_url(SERVERS[kind]).render_as_string(hide_password=True)
            reason = " ".join(str(exc).split())
            raise RuntimeError(f"no {kind} server at {where}: {reason}") from None
        self.url = make_url(SERVERS[kind]).set(database=self.name).render_as_string(False)

    def wipe(self) -> None:
        """Drop everything in the database (tables, triggers, functions)."""
        engine = create_engine(make_url(self.url).set(drivername=_DRIVERS[self.kind]))
        try:
            with engine.begin() as conn:
                if self.kind == "postgresql":
                    conn.execute(text("DROP SCHEMA public CASCADE"))
                    conn.execute(text("CREATE SCHEMA public"))
                else:
                    for name in inspect(conn).get_table_names():
                        conn.execute(text(f"DROP TABLE `{name}`"))
        finally:
            engine.dispose()

    def drop(self) -> None:
        with self._admin.connect() as conn:
            force = " WITH (FORCE)" if self.kind == "postgresql" else ""
            conn.execute(text(f"DROP DATABASE IF EXISTS {self.name}{force}"))
            conn.commit()
        self._admin.dispose()


def execute(url: str, *statements: str) -> None:
    """Run SQL statements in one transaction on ``url`` (any of our URL spellings)."""
    from pks.db.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def query(url: str, statement: str) -> list[tuple[object, ...]]:
    from pks.db.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(statement))]
    finally:
        engine.dispose()


# --- a private PostgreSQL server --------------------------------------------------------------


class PrivatePostgres:
    """A PostgreSQL 15 cluster of our own (``initdb`` in a temporary directory), reachable
    only through a Unix socket in that directory — which works from any network namespace.

    Run as the ``postgres`` user (``runuser``); needs root. ``stop()``/``start()`` simulate an
    outage without touching the shared server.
    """

    PORT = 5432  # only names the socket file: there is no TCP listener

    def __init__(self) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                raise RuntimeError(f"{PG_BIN / tool} not found (apt-get install postgresql)")
        if os.geteuid() != 0 or shutil.which("runuser") is None:
            raise RuntimeError("a private PostgreSQL server needs root (runuser -u postgres)")
        self.dir = Path(tempfile.mkdtemp(prefix="pks-pg-"))
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        self.start()

    def _as_postgres(self, *argv: str) -> None:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.dir,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr or done.stdout}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.dir}&port={self.PORT}"

    def start(self) -> None:
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.dir}'"
            f" -p {self.PORT} -c fsync=off"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def create_database(self, name: str) -> str:
        execute_autocommit(self.url(), f"CREATE DATABASE {name}")
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def execute_autocommit(url: str, statement: str) -> None:
    from pks.db.engine import make_engine

    engine = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, step: float = 0.02
) -> float:
    """Poll ``condition()`` until true; returns the seconds it took, fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)
    return time.monotonic() - start
