"""pks_peer (customers and providers) and pks_set (per set algorithm).

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Each table is created only when absent, so that a database where they were made by hand (or
by an earlier development version) is adopted rather than refused.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _absent(name: str) -> bool:
    return not sa.inspect(op.get_bind()).has_table(name)


def upgrade() -> None:
    if _absent("pks_peer"):
        op.create_table(
            "pks_peer",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("name", sa.String(64), nullable=False),
            sa.Column("tag", sa.String(64), nullable=False),
            sa.Column("setid", sa.Integer, nullable=False),
            sa.Column("socket", sa.String(64), nullable=True),
            sa.Column("max_calls", sa.Integer, nullable=True),
            sa.Column("description", sa.String(255), nullable=False, server_default=""),
            sa.UniqueConstraint("name", name="pks_peer_name_uq"),
            sa.UniqueConstraint("tag", name="pks_peer_tag_uq"),
            sa.UniqueConstraint("setid", name="pks_peer_setid_uq"),
        )
    if _absent("pks_set"):
        op.create_table(
            "pks_set",
            sa.Column("setid", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("algorithm", sa.String(32), nullable=False),
        )


def downgrade() -> None:
    op.drop_table("pks_set")
    op.drop_table("pks_peer")
