"""Alembic environment: runs on the connection that :mod:`pks.db.migrate` hands over.

Only pks's own tables are in the target metadata, and the revision lives in
``pks_alembic_version``; Kamailio's tables are outside alembic's view.
"""

from __future__ import annotations

from alembic import context

from pks.db.migrations import VERSION_TABLE
from pks.db.own import own_metadata


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("pks migrations run through pks.db.migrate (pks db upgrade)")
    context.configure(
        connection=connection,
        target_metadata=own_metadata,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


_run()
