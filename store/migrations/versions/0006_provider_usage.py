"""Providers: usage rows and the response cache (issue 6).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "provider_usage",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user", sa.String(256), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("assistant_id", sa.String(128), nullable=True),
        sa.Column("node", sa.String(128), nullable=True),
        sa.Column("alias", sa.String(256), nullable=False),
        sa.Column("deployment", sa.String(512), nullable=False),
        sa.Column("model_version", sa.String(256), nullable=True),
        sa.Column("prompt_name", sa.String(128), nullable=True),
        sa.Column("prompt_version", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("tokens_estimated", sa.Boolean, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("price_known", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("cache_hit", sa.Boolean, nullable=False),
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column("streamed", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_provider_usage_tenant_created", "provider_usage", ["tenant", "created_at"])
    op.create_index(
        "ix_provider_usage_tenant_user_created",
        "provider_usage",
        ["tenant", "user", "created_at"],
    )
    op.create_index("ix_provider_usage_run", "provider_usage", ["run_id"])
    op.create_table(
        "provider_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("deployment", sa.String(512), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("user", sa.String(256), nullable=True),
        sa.Column("response", sa.JSON, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
    )
    op.create_index("ix_provider_cache_expires", "provider_cache", ["expires_at"])
    op.create_index("ix_provider_cache_tenant_user", "provider_cache", ["tenant", "user"])


def downgrade() -> None:
    op.drop_index("ix_provider_cache_tenant_user", table_name="provider_cache")
    op.drop_index("ix_provider_cache_expires", table_name="provider_cache")
    op.drop_table("provider_cache")
    op.drop_index("ix_provider_usage_run", table_name="provider_usage")
    op.drop_index("ix_provider_usage_tenant_user_created", table_name="provider_usage")
    op.drop_index("ix_provider_usage_tenant_created", table_name="provider_usage")
    op.drop_table("provider_usage")
