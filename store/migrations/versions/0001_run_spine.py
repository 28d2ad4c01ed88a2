"""Run spine: threads, runs, run events, the tool-call ledger and workspace notes.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("thread_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("assistant_id", sa.String(128)),
        sa.Column("graph_id", sa.String(128)),
        sa.Column("graph_version", sa.String(64)),
        sa.Column("prompt_version", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_threads_tenant", "threads", ["tenant"])

    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column(
            "thread_id",
            sa.String(64),
            sa.ForeignKey("threads.thread_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("requester", sa.String(256), nullable=False),
        sa.Column("requester_roles", sa.JSON, nullable=False),
        sa.Column("assistant_id", sa.String(128), nullable=False),
        sa.Column("graph_id", sa.String(128), nullable=False),
        sa.Column("graph_version", sa.String(64), nullable=False),
        sa.Column("prompt_version", sa.String(64)),
        sa.Column("model", sa.String(512)),
        sa.Column("limits", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stop_reason", sa.String(32)),
        sa.Column("error", sa.Text),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("started_at", TZ),
        sa.Column("ended_at", TZ),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_runs_tenant", "runs", ["tenant"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_thread_created", "runs", ["thread_id", "created_at"])

    op.create_table(
        "run_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "run_id",
            sa.String(64),
            sa.ForeignKey("runs.run_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("data", sa.JSON),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("run_id", "seq", name="uq_run_events_run_seq"),
    )

    op.create_table(
        "tool_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("tool_call_id", sa.String(128), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("principal", sa.String(256), nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("approved_by", sa.String(256)),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("completed_at", TZ),
        sa.UniqueConstraint("thread_id", "task_id", "tool_call_id", name="uq_tool_calls_key"),
    )
    op.create_index("ix_tool_calls_thread_id", "tool_calls", ["thread_id"])
    op.create_index("ix_tool_calls_run_id", "tool_calls", ["run_id"])
    op.create_index("ix_tool_calls_tenant", "tool_calls", ["tenant"])

    op.create_table(
        "notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_notes_tenant_owner", "notes", ["tenant", "owner"])


def downgrade() -> None:
    op.drop_table("notes")
    op.drop_table("tool_calls")
    op.drop_table("run_events")
    op.drop_table("runs")
    op.drop_table("threads")
