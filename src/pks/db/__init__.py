"""Beside the data path: the Kamailio-compatible configuration database.

``engine`` opens it (SQLite by default, PostgreSQL, MySQL/MariaDB) and creates or checks the
schema, ``schema`` describes Kamailio 5.6's ``version``/``address``/``dialplan``/``dispatcher``
tables, ``load`` reads them into ``pks.route.rows`` values for a snapshot build. Never on
the per-message path; blocking, so the server runs it in a worker thread.
"""

from pks.db.engine import (
    DEFAULT_URL,
    SchemaVersionError,
    check_versions,
    ensure_schema,
    make_engine,
)
from pks.db.load import LoadError, load_tables

__all__ = [
    "DEFAULT_URL",
    "LoadError",
    "SchemaVersionError",
    "check_versions",
    "ensure_schema",
    "load_tables",
    "make_engine",
]
