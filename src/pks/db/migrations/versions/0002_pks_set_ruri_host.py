"""pks_set.ruri_host (keep or gateway), and pks_set.algorithm NULL-able.

Revision ID: 0002
Revises: 0001
Create Date: 2027-01-15

``ruri_host`` says what a relayed request's R-URI host becomes on a set's gateways: ``keep``
(the default: the caller's, as before) or ``gateway`` (the gateway's host and port). A set
may now override it alone, so ``algorithm`` may be NULL (= ``PKS_DISPATCHER_ALG``).

Like 0001, nothing is done that is already there: a table made by hand (or by
``own_metadata.create_all``) with the new column is adopted as it is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _columns() -> dict[str, bool]:
    """pks_set's column names → NULL-able."""
    found = sa.inspect(op.get_bind()).get_columns("pks_set")
    return {column["name"]: bool(column["nullable"]) for column in found}


def upgrade() -> None:
    columns = _columns()
    if "ruri_host" not in columns:
        # a server default, so that rows written by an older pks (or by hand) read as 'keep'
        op.add_column(
            "pks_set",
            sa.Column("ruri_host", sa.String(16), nullable=False, server_default="keep"),
        )
    if not columns["algorithm"]:
        # batch: SQLite cannot drop a NOT NULL in place and gets the table copied; the other
        # engines get a plain ALTER
        with op.batch_alter_table("pks_set") as batch:
            batch.alter_column("algorithm", existing_type=sa.String(32), nullable=True)


def downgrade() -> None:
    # a row without an algorithm only carried ruri_host, which goes away with the column
    op.execute("DELETE FROM pks_set WHERE algorithm IS NULL")
    with op.batch_alter_table("pks_set") as batch:
        batch.alter_column("algorithm", existing_type=sa.String(32), nullable=False)
        batch.drop_column("ruri_host")
