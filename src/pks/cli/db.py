"""``pks db``: set up and inspect the database named by ``PKS_DB_URL`` (or ``--url``).

* ``pks db init`` — creates the missing Kamailio 5.6 tables and their ``version`` rows, our
  tables at the newest revision and, on PostgreSQL, the change-notification triggers.
  Existing tables are never altered; running it twice does nothing the second time.
* ``pks db upgrade`` — migrates our tables (``pks_peer``, ``pks_set``) to the newest revision
  (and reinstalls the PostgreSQL triggers).
* ``pks db status`` — tables present, our revision, triggers, reachability.
"""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import Engine

db_app = typer.Typer(help="Set up and inspect the routing database.", no_args_is_help=True)

UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Database URL (default: PKS_DB_URL, then sqlite:///./pks.db)."),
]


def _engine(url: str | None) -> Engine:
    from pks.db.engine import make_engine

    if url is None:
        from pks.cli.context import settings

        url = settings().db_url
    try:
        return make_engine(url)
    except Exception as exc:  # bad URL, unknown driver
        typer.echo(f"pks: bad database URL {url!r}: {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(engine: Engine, exc: Exception) -> typer.Exit:
    from sqlalchemy.exc import DBAPIError

    from pks.db.engine import describe, is_unreachable

    what = "database unreachable" if is_unreachable(exc) else "database error"
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(cause).split())
    typer.echo(f"pks: {what} ({describe(engine)}): {text}", err=True)
    return typer.Exit(1)


WaitOption = Annotated[
    float,
    typer.Option(
        "--wait",
        metavar="SECONDS",
        help="Wait up to this long for an unreachable database (a container starting beside it).",
    ),
]


@db_app.command()
def init(url: UrlOption = None, wait: WaitOption = 0) -> None:
    """Create what is missing: Kamailio tables, pks tables, PostgreSQL change triggers."""
    import time

    from pks.db import migrate
    from pks.db.engine import describe, is_unreachable

    engine = _engine(url)
    deadline = time.monotonic() + wait
    said = False
    try:
        while True:
            try:
                done = migrate.init(engine)
                break
            except Exception as exc:
                if not is_unreachable(exc) or time.monotonic() >= deadline:
                    raise _fail(engine, exc) from None
                if not said:
                    typer.echo(f"pks: waiting for the database ({describe(engine)})", err=True)
                    said = True
                time.sleep(1)
    finally:
        engine.dispose()
    for line in done or ["nothing to do: every table is there"]:
        typer.echo(line)


@db_app.command()
def upgrade(
    url: UrlOption = None,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate pks's own tables (never Kamailio's) to the newest revision."""
    from pks.db import migrate

    engine = _engine(url)
    try:
        before, after = migrate.upgrade(engine, revision)
    except Exception as exc:
        raise _fail(engine, exc) from None
    finally:
        engine.dispose()
    if before == after:
        typer.echo(f"pks tables already at revision {after}")
    else:
        typer.echo(f"pks tables migrated from revision {before or 'none'} to {after}")


@db_app.command()
def status(url: UrlOption = None) -> None:
    """Show the tables, the revision of pks's tables and the change triggers."""
    from pks.db import migrate
    from pks.db.engine import SchemaVersionError, check_versions, describe
    from pks.db.watch import WATCHED

    engine = _engine(url)
    try:
        state = migrate.state(engine)
        try:
            versions = ", ".join(f"{k} {v}" for k, v in check_versions(engine).items())
        except SchemaVersionError as exc:
            versions = f"NOT USABLE: {exc}"
    except Exception as exc:
        raise _fail(engine, exc) from None
    finally:
        engine.dispose()
    postgresql = engine.url.get_backend_name() == "postgresql"
    watched = [name for name in WATCHED if name in state.tables]
    missing = [name for name in watched if name not in state.triggers]
    if not postgresql:
        changes = "periodic check (PKS_DB_POLL_INTERVAL)"
    elif missing:
        changes = f"periodic check; no trigger on {', '.join(missing)} (run pks db init)"
    else:
        changes = "LISTEN/NOTIFY (triggers installed)"
    behind = "" if state.revision == state.head else f" (newest {state.head}: pks db upgrade)"
    typer.echo(f"database:      {describe(engine)} (reachable)")
    typer.echo(f"kamailio:      {versions}")
    typer.echo(f"pks tables:    revision {state.revision or 'none'}{behind}")
    typer.echo(f"changes:       {changes}")
    typer.echo(f"tables:        {', '.join(state.tables) or 'none'}")
