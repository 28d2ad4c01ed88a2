"""Run queue and API resources: run kwargs, leases, cancellation, idempotency; assistants.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("kwargs", sa.JSON, nullable=True))
        batch.add_column(
            sa.Column("multitask_strategy", sa.String(16), nullable=False, server_default="reject")
        )
        batch.add_column(sa.Column("submitted_by", sa.String(256), nullable=True))
        batch.add_column(sa.Column("lease_owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", TZ, nullable=True))
        batch.add_column(sa.Column("attempt", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("cancel_requested", sa.String(16), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(256), nullable=True))
        batch.create_unique_constraint("uq_runs_idempotency", ["tenant", "idempotency_key"])
        batch.create_index("ix_runs_status_created", ["status", "created_at"])

    op.create_table(
        "assistants",
        sa.Column("assistant_id", sa.String(128), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("graph_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_assistants_tenant", "assistants", ["tenant"])


def downgrade() -> None:
    op.drop_table("assistants")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_status_created")
        batch.drop_constraint("uq_runs_idempotency", type_="unique")
        for column in (
            "idempotency_key",
            "cancel_requested",
            "attempt",
            "lease_expires_at",
            "lease_owner",
            "submitted_by",
            "multitask_strategy",
            "kwargs",
        ):
            batch.drop_column(column)
