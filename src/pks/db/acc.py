"""Beside the data path: Kamailio 5.6's ``acc`` table (SQLAlchemy Core), which the call
records' database sink (:mod:`pks.cdr.sinks`) fills beside ``pks_cdr``
(:data:`pks.db.own.pks_cdr`), the way Kamailio's acc module does, so that reporting written
for a Kamailio interconnect keeps working.

Columns as Kamailio's creation scripts (``acc-create.sql``): ``method``, ``from_tag``,
``to_tag``, ``callid``, ``sip_code`` (three characters), ``sip_reason``, ``time`` (a local time,
as Kamailio writes it); table version 5. Migration 0004 creates it only when absent: a
Kamailio database keeps its own.
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, DateTime, Index, MetaData, String, Table, inspect

from pks.db.own import pks_cdr
from pks.db.schema import _default, _id, version

__all__ = ["ACC_VERSION", "acc", "acc_metadata", "ensure_acc", "ensure_tables", "pks_cdr"]

ACC_VERSION = 5
acc_metadata = MetaData()

acc = Table(
    "acc",
    acc_metadata,
    _id(),
    Column("method", String(16), nullable=False, server_default=_default("")),
    Column("from_tag", String(128), nullable=False, server_default=_default("")),
    Column("to_tag", String(128), nullable=False, server_default=_default("")),
    Column("callid", String(255), nullable=False, server_default=_default("")),
    Column("sip_code", String(3), nullable=False, server_default=_default("")),
    Column("sip_reason", String(128), nullable=False, server_default=_default("")),
    Column("time", DateTime, nullable=False),
    Index("acc_callid_idx", "callid"),  # callid_idx on MySQL, as Kamailio names it there
)


def ensure_acc(conn: Connection) -> bool:
    """Create ``acc`` when absent (MySQL: its index named ``callid_idx``, as Kamailio's
    script), with its ``version`` row when that table exists; whether it was created."""
    found = inspect(conn)
    if found.has_table("acc"):
        return False
    acc.create(conn)
    if conn.dialect.name in ("mysql", "mariadb"):
        conn.exec_driver_sql("ALTER TABLE acc RENAME INDEX acc_callid_idx TO callid_idx")
    if found.has_table("version"):
        present = conn.execute(version.select().where(version.c.table_name == "acc")).first()
        if present is None:
            conn.execute(version.insert().values(table_name="acc", table_version=ACC_VERSION))
    return True


def ensure_tables(conn: Connection, with_acc: bool = True) -> None:
    """The database sink's tables, created when absent (a database of its own,
    ``PKS_CDR_DB_URL``, that ``pks db upgrade`` does not migrate)."""
    if not inspect(conn).has_table("pks_cdr"):
        pks_cdr.create(conn)
    if with_acc:
        ensure_acc(conn)
