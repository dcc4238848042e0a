"""Beside the data path: versioned migrations of pks's own tables (alembic), and the
one-call set-ups behind ``pks db init``, ``pks db upgrade`` and ``pks run``'s first start.

* :func:`upgrade` brings ``pks_peer``/``pks_set`` to the newest revision (``pks db upgrade``).
* :func:`init` creates the missing Kamailio tables and ``version`` rows, upgrades ours and,
  on PostgreSQL, installs the change-notification triggers (``pks db init``).
* :func:`prepare` is what ``pks run`` does at start-up: an empty database gets :func:`init`;
  an existing one only gets what is missing, our tables are created when absent but never
  upgraded behind the operator's back, and a Kamailio table is never altered.

Blocking code (worker thread or CLI).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logging.getLogger("alembic").setLevel(logging.WARNING)  # before alembic logs its set-up

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Engine, inspect  # noqa: E402

from pks.db import watch  # noqa: E402
from pks.db.engine import ensure_schema, is_empty, schema_lock  # noqa: E402
from pks.db.migrations import VERSION_TABLE  # noqa: E402

__all__ = ["SchemaState", "current", "head", "init", "prepare", "state", "upgrade"]

log = logging.getLogger("pks.db")

_SCRIPTS = "pks.db:migrations"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", _SCRIPTS)
    return config


def head() -> str:
    """The newest revision of our tables."""
    revision = ScriptDirectory.from_config(_config()).get_current_head()
    assert revision is not None
    return revision


def current(engine: Engine) -> str | None:
    """The revision our tables are at, None when they were never migrated."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate our tables to ``revision``; returns (revision before, revision after).
    On PostgreSQL, the change triggers are (re)installed too."""
    with schema_lock(engine):
        before = _upgrade(engine, revision)
        if engine.url.get_backend_name() == "postgresql":
            watch.install_triggers(engine)
        return before, current(engine)


def _upgrade(engine: Engine, revision: str) -> str | None:
    before = current(engine)
    config = _config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return before


def init(engine: Engine) -> list[str]:
    """Everything pks needs, created when missing; returns what was done, one line each."""
    with schema_lock(engine):
        return _init(engine)


def _init(engine: Engine) -> list[str]:
    done: list[str] = []
    before = _tables(engine)
    ensure_schema(engine)
    created = sorted(_tables(engine) - before)
    if created:
        done.append(f"created Kamailio tables: {', '.join(created)}")
    old = _upgrade(engine, "head")
    new = current(engine)
    if old != new:
        done.append(f"pks tables migrated from revision {old or 'none'} to {new}")
    if engine.url.get_backend_name() == "postgresql":
        installed = watch.install_triggers(engine)
        done.append(f"change triggers (NOTIFY {watch.CHANNEL}) on: {', '.join(installed)}")
    return done


def prepare(engine: Engine) -> None:
    """Start-up set-up: see the module docstring. Never alters an existing table."""
    with schema_lock(engine):
        if is_empty(engine):
            for line in _init(engine):
                log.info("new database: %s", line)
            return
        ensure_schema(engine)
        revision = current(engine)
        if revision is None:
            try:
                _upgrade(engine, "head")
            except Exception as exc:  # e.g. a read-only account on a shared Kamailio database
                log.warning("cannot create pks tables (%s); running without peers and sets", exc)
            else:
                log.info("created pks tables (revision %s)", head())
        elif revision != head():
            log.warning(
                "pks tables at revision %s, newest is %s: run pks db upgrade", revision, head()
            )


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What ``pks db status`` shows."""

    tables: tuple[str, ...]
    revision: str | None
    head: str
    triggers: tuple[str, ...]


def state(engine: Engine) -> SchemaState:
    tables = _tables(engine)
    postgresql = engine.url.get_backend_name() == "postgresql"
    triggers = watch.triggered_tables(engine) if postgresql else set()
    return SchemaState(
        tables=tuple(sorted(tables)),
        revision=current(engine),
        head=head(),
        triggers=tuple(sorted(triggers)),
    )


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())
