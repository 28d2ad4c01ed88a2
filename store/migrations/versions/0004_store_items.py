"""LangGraph store items: JSON documents under a namespace path, per tenant, with a TTL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    # The primary key (tenant, namespace, key) also serves lookups by (tenant, namespace);
    # a separate index on those two columns would duplicate it.
    op.create_table(
        "store_items",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("namespace", sa.Text, primary_key=True),
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("ttl_minutes", sa.Float, nullable=True),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("store_items")
