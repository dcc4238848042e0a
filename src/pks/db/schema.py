"""Beside the data path: Kamailio 5.6's ``version``, ``address``, ``dialplan`` and
``dispatcher`` tables as SQLAlchemy Core metadata.

Names, columns, types, defaults and NULL-ability are those of Kamailio's own creation
scripts (``utils/kamctl/db_{sqlite,postgres,mysql}/*-create.sql``, Debian
``/usr/share/kamailio/``), so a database created by Kamailio works unchanged and one created
here works with Kamailio: SQLite/PostgreSQL ``INTEGER``/``SERIAL`` ids, MySQL
``INT(10) UNSIGNED AUTO_INCREMENT`` and the unsigned ``grp``/``port``/``table_version``.
No secondary indexes (Kamailio has none on these tables), only ``version``'s unique
``table_name`` (named ``version_table_name_idx``; ``table_name_idx`` on MySQL).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import DDLCompiler

__all__ = [
    "ACCEPTED_VERSIONS",
    "TABLE_VERSIONS",
    "address",
    "dialplan",
    "dispatcher",
    "metadata",
    "version",
]

TABLE_VERSIONS: dict[str, int] = {"version": 1, "address": 6, "dialplan": 2, "dispatcher": 4}
"""The ``version.table_version`` we create for each table."""

ACCEPTED_VERSIONS: dict[str, frozenset[int]] = {
    "version": frozenset({1}),
    "address": frozenset({6}),
    "dialplan": frozenset({2}),
    "dispatcher": frozenset({1, 2, 3, 4}),  # like Kamailio: older tables have fewer columns
}

_VERSION_UNIQUE = "version_table_name_idx"

metadata = MetaData()


def _id() -> Column[int]:
    """Kamailio's auto-increment primary key (``INT(10) UNSIGNED`` on MySQL)."""
    return Column(
        "id",
        Integer().with_variant(mysql.INTEGER(display_width=10, unsigned=True), "mysql", "mariadb"),
        primary_key=True,
        autoincrement=True,
        nullable=False,
    )


def _int(display_width: int | None = None, *, unsigned: bool = False) -> Any:
    """``INTEGER``, or ``INT(n) [UNSIGNED]`` on MySQL."""
    variant = mysql.INTEGER(display_width=display_width, unsigned=unsigned)
    return Integer().with_variant(variant, "mysql", "mariadb")


def _default(value: int | str) -> Any:
    return text(repr(value) if isinstance(value, str) else str(value))


version = Table(
    "version",
    metadata,
    _id(),
    Column("table_name", String(32), nullable=False),
    Column("table_version", _int(unsigned=True), nullable=False, server_default=_default(0)),
    UniqueConstraint("table_name", name=_VERSION_UNIQUE),
)

address = Table(
    "address",
    metadata,
    _id(),
    Column("grp", _int(11, unsigned=True), nullable=False, server_default=_default(1)),
    Column("ip_addr", String(50), nullable=False),
    Column("mask", Integer, nullable=False, server_default=_default(32)),
    Column(
        "port",
        SmallInteger().with_variant(
            mysql.SMALLINT(display_width=5, unsigned=True), "mysql", "mariadb"
        ),
        nullable=False,
        server_default=_default(0),
    ),
    Column("tag", String(64), nullable=True),
)

dialplan = Table(
    "dialplan",
    metadata,
    _id(),
    Column("dpid", _int(11), nullable=False),
    Column("pr", _int(11), nullable=False),
    Column("match_op", _int(11), nullable=False),
    Column("match_exp", String(64), nullable=False),
    Column("match_len", _int(11), nullable=False),
    Column("subst_exp", String(64), nullable=False),
    Column("repl_exp", String(256), nullable=False),
    Column("attrs", String(64), nullable=False),
)

dispatcher = Table(
    "dispatcher",
    metadata,
    _id(),
    Column("setid", Integer, nullable=False, server_default=_default(0)),
    Column("destination", String(192), nullable=False, server_default=_default("")),
    Column("flags", Integer, nullable=False, server_default=_default(0)),
    Column("priority", Integer, nullable=False, server_default=_default(0)),
    Column("attrs", String(128), nullable=False, server_default=_default("")),
    Column("description", String(64), nullable=False, server_default=_default("")),
)


@compiles(UniqueConstraint, "mysql")
@compiles(UniqueConstraint, "mariadb")
def _mysql_unique(element: UniqueConstraint, compiler: DDLCompiler, **kw: Any) -> str:
    """Kamailio's MySQL script names ``version``'s unique key ``table_name_idx``."""
    ddl: str = compiler.visit_unique_constraint(element, **kw)
    if element.name == _VERSION_UNIQUE:
        ddl = ddl.replace(_VERSION_UNIQUE, "table_name_idx", 1)
    return ddl
