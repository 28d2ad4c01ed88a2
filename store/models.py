"""Relational schema (SQLAlchemy 2 declarative). Migrations in store/migrations own the DDL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite reads back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Thread(Base):
    __tablename__ = "threads"

    thread_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    owner: Mapped[str] = mapped_column(String(256))
    assistant_id: Mapped[str | None] = mapped_column(String(128))
    graph_id: Mapped[str | None] = mapped_column(String(128))
    graph_version: Mapped[str | None] = mapped_column(String(64))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="idle")
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_thread_created", "thread_id", "created_at"),
        Index("ix_runs_status_created", "status", "created_at"),
        UniqueConstraint("tenant", "idempotency_key", name="uq_runs_idempotency"),
    )

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.thread_id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    requester: Mapped[str] = mapped_column(String(256))
    requester_roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    assistant_id: Mapped[str] = mapped_column(String(128))
    graph_id: Mapped[str] = mapped_column(String(128))
    graph_version: Mapped[str] = mapped_column(String(64))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(512))
    limits: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    kwargs: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """How to run it: input, command, config, stream modes... (the API's run kwargs)."""
    multitask_strategy: Mapped[str] = mapped_column(
        String(16), default="reject", server_default="reject"
    )
    submitted_by: Mapped[str | None] = mapped_column(String(256))
    """Who created the run (a reviewer resuming acts on behalf of the requester)."""
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cancel_requested: Mapped[str | None] = mapped_column(String(16))
    """``interrupt`` or ``rollback`` once a cancel was asked for."""
    idempotency_key: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RunEvent(Base):
    __tablename__ = "run_events"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_run_events_run_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    event: Mapped[str] = mapped_column(String(64))
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ToolCall(Base):
    """The tool-call ledger: one row per side-effecting call, keyed for replay."""

    __tablename__ = "tool_calls"
    __table_args__ = (
        UniqueConstraint("thread_id", "task_id", "tool_call_id", name="uq_tool_calls_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    thread_id: Mapped[str] = mapped_column(String(64), index=True)
    task_id: Mapped[str] = mapped_column(String(64))
    tool_call_id: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    principal: Mapped[str] = mapped_column(String(256))
    tool: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # started | succeeded | failed
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text)
    approved_by: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Note(Base):
    """Workspace notes, the built-in notes_* tools' records."""

    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_tenant_owner", "tenant", "owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str] = mapped_column(String(256))
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # issue 4 (0005)
    untrusted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Written by a run that had read untrusted content: reading it taints (issue 4)."""


class Assistant(Base):
    """Assistants created through the API (configured ones live in settings)."""

    __tablename__ = "assistants"

    assistant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    graph_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(256))
    description: Mapped[str | None] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ApiKey(Base):
    """An API key: only a hash of its secret is stored (see identity/apikeys.py)."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    user: Mapped[str] = mapped_column(String(256))
    roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    key_hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StoreItem(Base):
    """A LangGraph store item: a JSON document under a namespace path, owned by a tenant."""

    __tablename__ = "store_items"

    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    namespace: Mapped[str] = mapped_column(Text, primary_key=True)
    """The namespace labels joined with "." (a label cannot contain one)."""
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    ttl_minutes: Mapped[float | None] = mapped_column(Float)
    """The item's time to live, kept so that a read can push ``expires_at`` back."""
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# --- tools: audit chain, approvals, tickets, outbox (issue 4; migration 0005) ---


class AuditEntry(Base):
    """One link of the append-only audit chain: digests only, never arguments or results.

    ``hash`` = sha256(``prev_hash`` + canonical JSON of the other columns), so editing,
    deleting or reordering any row breaks every later link (see tools/audit.py).
    """

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_tenant_seq", "tenant", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    event: Mapped[str] = mapped_column(String(32))
    tenant: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(256))
    via: Mapped[str] = mapped_column(String(16))
    tool: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(32))
    approver: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    run_id: Mapped[str | None] = mapped_column(String(64))
    thread_id: Mapped[str | None] = mapped_column(String(64))
    approval_id: Mapped[str | None] = mapped_column(String(64))
    args_digest: Mapped[str | None] = mapped_column(String(64))
    result_digest: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditPayload(Base):
    """Arguments and result of an audit entry, beside the chain: erasable (GDPR Art. 17)
    without breaking it. The digests in the chain are salted with ``salt``, which is
    erased too, so an erased payload cannot be confirmed by guessing."""

    __tablename__ = "audit_payloads"
    __table_args__ = (Index("ix_audit_payloads_tenant_actor", "tenant", "actor"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tenant: Mapped[str] = mapped_column(String(128))
    actor: Mapped[str] = mapped_column(String(256))
    salt: Mapped[str | None] = mapped_column(String(64))
    args: Mapped[Any] = mapped_column(JSON, nullable=True)
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Approval(Base):
    """A call waiting for (or given) a reviewer's decision: bound to the tool and the
    arguments' hash, single-use, expiring."""

    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_tenant_status", "tenant", "status"),)

    approval_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    requester: Mapped[str] = mapped_column(String(256))
    via: Mapped[str] = mapped_column(String(16))
    tool: Mapped[str] = mapped_column(String(64))
    risk: Mapped[str] = mapped_column(String(16))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    args_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    preview: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Ticket(Base):
    """Workspace tickets, the built-in tickets_* tools' records (shared within a tenant)."""

    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_tenant_status", "tenant", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str] = mapped_column(String(256))
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="open")
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    untrusted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OutboxEmail(Base):
    """E-mails written by email_send; a mailer process delivers them (not in this repo)."""

    __tablename__ = "outbox_emails"
    __table_args__ = (Index("ix_outbox_emails_tenant_status", "tenant", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128))
    sender: Mapped[str] = mapped_column(String(256))
    recipients: Mapped[list[Any]] = mapped_column(JSON)
    subject: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- providers: usage, response cache, tenant credentials (issue 6; migration 0006) ---


class ProviderUsage(Base):
    """One model call (or cache hit): who, which alias and deployment, tokens, cost, outcome."""

    __tablename__ = "provider_usage"
    __table_args__ = (
        Index("ix_provider_usage_tenant_created", "tenant", "created_at"),
        Index("ix_provider_usage_tenant_user_created", "tenant", "user", "created_at"),
        Index("ix_provider_usage_run", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tenant: Mapped[str] = mapped_column(String(128))
    user: Mapped[str | None] = mapped_column(String(256))
    run_id: Mapped[str | None] = mapped_column(String(64))
    assistant_id: Mapped[str | None] = mapped_column(String(128))
    node: Mapped[str | None] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(256))
    deployment: Mapped[str] = mapped_column(String(512))
    model_version: Mapped[str | None] = mapped_column(String(256))
    prompt_name: Mapped[str | None] = mapped_column(String(128))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    """No usage came back from the provider: the counts are the offline estimate."""
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    price_known: Mapped[bool] = mapped_column(Boolean, default=True)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    """The answer came from a deployment other than the alias's first choice."""
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text)


class ProviderCacheEntry(Base):
    """A cached model response, keyed by a digest of deployment, messages, tools and
    parameters. Owner columns let erasure remove a user's entries."""

    __tablename__ = "provider_cache"
    __table_args__ = (
        Index("ix_provider_cache_expires", "expires_at"),
        Index("ix_provider_cache_tenant_user", "tenant", "user"),
    )

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(512))
    tenant: Mapped[str] = mapped_column(String(128))
    user: Mapped[str | None] = mapped_column(String(256))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- memory, documents, privacy (issue 5; migration 0007) ---


# --- feedback on runs (issue 8; migration 0008) ---


class Feedback(Base):
    """A user's or reviewer's judgement of a run: one row per (run, author, key)."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("run_id", "author", "key", name="uq_feedback_author_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    thread_id: Mapped[str] = mapped_column(String(64), index=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(String(256))
    author_roles: Mapped[list[Any]] = mapped_column(JSON, default=list)
    key: Mapped[str] = mapped_column(String(64))
    score: Mapped[float | None] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
