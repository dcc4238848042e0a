"""Call records: pks_cdr (one row per call attempt) and Kamailio's acc when absent.

Revision ID: 0004
Revises: 0003
Create Date: 2027-02-05

``pks_cdr`` holds the records of the database sink (``PKS_CDR_SINKS=db``, docs/cdr.md), one
row per call, keyed by the record's UUID. ``acc`` is Kamailio 5.6's table (acc-create.sql,
table version 5), filled with the rows Kamailio's acc module would write (INVITE and BYE,
failed INVITEs), so that existing reporting keeps working: created only when absent — a
Kamailio database keeps its own — with its ``version`` row when that table exists.

Like the earlier revisions, nothing is done that is already there.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _time() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table("pks_cdr"):
        op.create_table(
            "pks_cdr",
            sa.Column("id", sa.String(36), primary_key=True, autoincrement=False),
            sa.Column("call_id", sa.String(255), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("start_time", _time(), nullable=False),
            sa.Column("answer_time", _time(), nullable=True),
            sa.Column("end_time", _time(), nullable=True),
            sa.Column("duration", sa.Float, nullable=False, server_default="0"),
            sa.Column("setup", sa.Float, nullable=True),
            sa.Column("caller", sa.String(64), nullable=True),
            sa.Column("called", sa.String(64), nullable=True),
            sa.Column("peer", sa.String(64), nullable=True),
            sa.Column("source", sa.String(64), nullable=False),
            sa.Column("setid", sa.Integer, nullable=True),
            sa.Column("gateway", sa.String(192), nullable=True),
            sa.Column("attempts", sa.Text, nullable=True),
            sa.Column("code", sa.Integer, nullable=True),
            sa.Column("reason", sa.String(128), nullable=True),
            sa.Column("ended_by", sa.String(16), nullable=True),
            sa.Column("from_tag", sa.String(128), nullable=True),
            sa.Column("to_tag", sa.String(128), nullable=True),
            sa.Column("worker", sa.Integer, nullable=True),
        )
        op.create_index("pks_cdr_start_idx", "pks_cdr", ["start_time"])
        op.create_index("pks_cdr_callid_idx", "pks_cdr", ["call_id"])
        op.create_index("pks_cdr_peer_idx", "pks_cdr", ["peer", "start_time"])
    from pks.db.acc import ensure_acc

    ensure_acc(bind)


def downgrade() -> None:
    # acc may hold Kamailio's own rows: it stays
    op.drop_table("pks_cdr")
