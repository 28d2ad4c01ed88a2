"""Feedback on runs from users and reviewers (issue 8).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author", sa.String(256), nullable=False),
        sa.Column("author_roles", sa.JSON, nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("run_id", "author", "key", name="uq_feedback_author_key"),
    )
    op.create_index("ix_feedback_tenant", "feedback", ["tenant"])
    op.create_index("ix_feedback_thread_id", "feedback", ["thread_id"])


def downgrade() -> None:
    op.drop_index("ix_feedback_thread_id", "feedback")
    op.drop_index("ix_feedback_tenant", "feedback")
    op.drop_table("feedback")
