"""Flood and fraud protection: pks_ban, pks_block, pks_peer.max_cps and max_intl_calls.

Revision ID: 0003
Revises: 0002
Create Date: 2027-02-01

* ``pks_ban`` — addresses and networks (IPv4, IPv6) whose packets are dropped before parsing,
  with a reason and an expiry (Unix seconds, NULL = never), read by every instance.
* ``pks_block`` — destination number prefixes refused with 403 (``tag`` NULL: every peer,
  else only the peer of that tag), with the reason the operator reads.
* ``pks_peer.max_cps`` — new calls per second from a peer's sources (NULL = unlimited);
  ``pks_peer.max_intl_calls`` — its concurrent international calls (NULL = unlimited).

Like 0001 and 0002, nothing is done that is already there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def upgrade() -> None:
    inspector = _inspector()
    if not inspector.has_table("pks_ban"):
        op.create_table(
            "pks_ban",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("address", sa.String(64), nullable=False),
            sa.Column("reason", sa.String(255), nullable=False, server_default=""),
            sa.Column("created", sa.BigInteger, nullable=False, server_default="0"),
            sa.Column("expires", sa.BigInteger, nullable=True),
            sa.UniqueConstraint("address", name="pks_ban_address_uq"),
        )
    if not inspector.has_table("pks_block"):
        op.create_table(
            "pks_block",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("prefix", sa.String(32), nullable=False),
            sa.Column("tag", sa.String(64), nullable=True),
            sa.Column("reason", sa.String(255), nullable=False, server_default=""),
        )
    columns = {column["name"] for column in inspector.get_columns("pks_peer")}
    for name in ("max_cps", "max_intl_calls"):
        if name not in columns:
            op.add_column("pks_peer", sa.Column(name, sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pks_peer") as batch:
        batch.drop_column("max_intl_calls")
        batch.drop_column("max_cps")
    op.drop_table("pks_block")
    op.drop_table("pks_ban")
