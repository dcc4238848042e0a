"""Alembic migrations of pks's own tables (``pks_peer``, ``pks_set``); never Kamailio's.

Run through :mod:`pks.db.migrate` (``pks db upgrade``); the revision is kept in the table
``pks_alembic_version`` so that another tool's ``alembic_version`` is left alone.
"""

VERSION_TABLE = "pks_alembic_version"
