"""Per-tenant provider credentials (issue 6, bring your own key): one AES-GCM sealed API
key per (tenant, provider); the plain key is never stored.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provider_credentials",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("provider", sa.String(32), primary_key=True),
        sa.Column("ciphertext", sa.Text, nullable=False),
        sa.Column("key_hint", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("provider_credentials")
