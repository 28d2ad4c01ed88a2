"""Per-step trace rows and who paid for a model call (issues 6 and 8).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trace_steps",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("namespace", sa.String(512), nullable=False),
        sa.Column("node", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("alias", sa.String(256), nullable=True),
        sa.Column("deployment", sa.String(512), nullable=True),
        sa.Column("prompt_name", sa.String(128), nullable=True),
        sa.Column("prompt_version", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("model_calls", sa.JSON, nullable=False),
        sa.Column("tool_calls", sa.JSON, nullable=False),
        sa.Column("retrieved", sa.JSON, nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_trace_steps_run", "trace_steps", ["run_id", "seq"])
    op.create_index("ix_trace_steps_created", "trace_steps", ["created_at"])
    with op.batch_alter_table("provider_usage") as batch:
        batch.add_column(
            sa.Column("paid_by", sa.String(16), nullable=False, server_default="deployment")
        )


def downgrade() -> None:
    with op.batch_alter_table("provider_usage") as batch:
        batch.drop_column("paid_by")
    op.drop_index("ix_trace_steps_created", "trace_steps")
    op.drop_index("ix_trace_steps_run", "trace_steps")
    op.drop_table("trace_steps")
