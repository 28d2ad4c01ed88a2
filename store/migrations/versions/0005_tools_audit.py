"""Tools: audit chain, approvals, tickets, outbox (issue 4).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notes") as batch:
        batch.add_column(sa.Column("updated_at", TZ, nullable=True))
        batch.add_column(
            sa.Column("untrusted", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("approver", sa.String(256), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("thread_id", sa.String(64), nullable=True),
        sa.Column("approval_id", sa.String(64), nullable=True),
        sa.Column("args_digest", sa.String(64), nullable=True),
        sa.Column("result_digest", sa.String(64), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
    )
    op.create_index("ix_audit_entries_tenant_seq", "audit_entries", ["tenant", "seq"])
    op.create_table(
        "audit_payloads",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("salt", sa.String(64), nullable=True),
        sa.Column("args", sa.JSON, nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("erased_at", TZ, nullable=True),
    )
    op.create_index("ix_audit_payloads_tenant_actor", "audit_payloads", ["tenant", "actor"])
    op.create_table(
        "approvals",
        sa.Column("approval_id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("requester", sa.String(256), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("risk", sa.String(16), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("args_hash", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("preview", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("decided_by", sa.String(256), nullable=True),
        sa.Column("decided_at", TZ, nullable=True),
        sa.Column("decision_note", sa.Text, nullable=True),
        sa.Column("used_at", TZ, nullable=True),
    )
    op.create_index("ix_approvals_tenant_status", "approvals", ["tenant", "status"])
    op.create_table(
        "tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("untrusted", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=True),
        sa.Column("closed_at", TZ, nullable=True),
    )
    op.create_index("ix_tickets_tenant_status", "tickets", ["tenant", "status"])
    op.create_table(
        "outbox_emails",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("sender", sa.String(256), nullable=False),
        sa.Column("recipients", sa.JSON, nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_outbox_emails_tenant_status", "outbox_emails", ["tenant", "status"])


def downgrade() -> None:
    op.drop_index("ix_outbox_emails_tenant_status", table_name="outbox_emails")
    op.drop_table("outbox_emails")
    op.drop_index("ix_tickets_tenant_status", table_name="tickets")
    op.drop_table("tickets")
    op.drop_index("ix_approvals_tenant_status", table_name="approvals")
    op.drop_table("approvals")
    op.drop_index("ix_audit_payloads_tenant_actor", table_name="audit_payloads")
    op.drop_table("audit_payloads")
    op.drop_index("ix_audit_entries_tenant_seq", table_name="audit_entries")
    op.drop_table("audit_entries")
    with op.batch_alter_table("notes") as batch:
        batch.drop_column("untrusted")
        batch.drop_column("updated_at")
