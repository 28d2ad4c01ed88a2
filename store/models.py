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
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def column_values(row: Any) -> dict[str, Any]:
    """``row``'s columns as a Core ``insert()`` takes them (keyed by column, not attribute:
    ``metadata_`` → ``metadata``); unset ones left out, so that their defaults apply."""
    return {
        column.key: value
        for name, column in _columns(type(row))
        if (value := getattr(row, name)) is not None
    }


_COLUMNS: dict[type[Any], list[tuple[str, Any]]] = {}


def _columns(model: type[Any]) -> list[tuple[str, Any]]:
    if model not in _COLUMNS:
        _COLUMNS[model] = [(prop.key, prop.columns[0]) for prop in sa_inspect(model).column_attrs]
    return _COLUMNS[model]


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
    __table_args__ = (
        Index("ix_notes_tenant_owner", "tenant", "owner"),
        # Ids are never reused (0014): an approval bound to {"note_id": 4} must not fit a
        # later note that SQLite would otherwise number 4 again after a delete.
        {"sqlite_autoincrement": True},
    )

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
    __table_args__ = (
        Index("ix_tickets_tenant_status", "tenant", "status"),
        {"sqlite_autoincrement": True},  # ids never reused, as for notes (0014)
    )

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
    paid_by: Mapped[str] = mapped_column(
        String(16), default="deployment", server_default="deployment"
    )
    """Whose key the call used: ``tenant`` (their own credential) or ``deployment``."""


class TraceStep(Base):
    """One executed graph node of a run, as the console's trace shows it (issue 8): its
    model calls (aggregated, and each in ``model_calls``), tool calls with outcomes and
    retrieved memory/document ids with scores (never text). Deleted by retention."""

    __tablename__ = "trace_steps"
    __table_args__ = (
        Index("ix_trace_steps_run", "run_id", "seq"),
        Index("ix_trace_steps_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    thread_id: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    namespace: Mapped[str] = mapped_column(String(512))
    node: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    alias: Mapped[str | None] = mapped_column(String(256))
    deployment: Mapped[str | None] = mapped_column(String(512))
    prompt_name: Mapped[str | None] = mapped_column(String(128))
    prompt_version: Mapped[str | None] = mapped_column(String(64))
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    model_calls: Mapped[Any] = mapped_column(JSON)
    tool_calls: Mapped[Any] = mapped_column(JSON)
    retrieved: Mapped[Any] = mapped_column(JSON)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


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


class Document(Base):
    """An uploaded document: one row per (tenant, owner, source); a changed upload under the
    same source replaces its chunks and keeps the id, so citations stay valid.

    Holds no text (that lives in chunks, or in the job's payload while awaiting a legal
    basis). ``status``: ``queued``, ``processing``, ``ready``, ``awaiting_basis``, ``failed``.
    """

    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("tenant", "owner", "source", name="uq_documents_tenant_owner_source"),
        Index("ix_documents_tenant_status", "tenant", "status"),
        Index("ix_documents_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(1024))
    mime_type: Mapped[str | None] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    """sha256 of the indexed upload's bytes (None until one version is indexed)."""
    status: Mapped[str] = mapped_column(String(32), default="queued")
    sensitivity: Mapped[str] = mapped_column(String(16), default="none")
    findings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Counts of privacy findings by type; never the matched text."""
    page_count: Mapped[int] = mapped_column(Integer, default=0)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    version: Mapped[int] = mapped_column(Integer, default=0)
    legal_basis_id: Mapped[str | None] = mapped_column(String(64))
    """The recorded legal basis its held content was released on, if any."""
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DocumentGrant(Base):
    """Who besides the owner may read a document: a user or a role, within its tenant."""

    __tablename__ = "document_grants"
    __table_args__ = (Index("ix_document_grants_tenant_grantee", "tenant", "kind", "grantee"),)

    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    """``user`` or ``role``."""
    grantee: Mapped[str] = mapped_column(String(256), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DocumentChunk(Base):
    """A passage of a document's text. ``id`` is the integer rowid the full-text index
    (FTS5 external content) points at, stable across VACUUM; ``chunk_id`` is the opaque id
    Chroma holds beside the vector. ``status``: ``indexed``."""

    __tablename__ = "document_chunks"
    __table_args__ = (
        Index("ix_document_chunks_document_seq", "document_id", "seq"),
        Index("ix_document_chunks_tenant_owner", "tenant", "owner"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chunk_id: Mapped[str] = mapped_column(String(32), unique=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str] = mapped_column(String(256))
    seq: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(64))
    sensitivity: Mapped[str] = mapped_column(String(16), default="none")
    status: Mapped[str] = mapped_column(String(16), default="indexed")
    embedding_model: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IngestionJob(Base):
    """Background ingestion of one upload: the bytes wait here (cleared once indexed or
    dead; kept while awaiting a legal basis), with attempts, lease, progress and events.
    ``status``: ``queued``, ``running``, ``succeeded``, ``held``, ``failed`` (bad input,
    never retried), ``dead`` (retries exhausted: the dead-letter state)."""

    __tablename__ = "ingestion_jobs"
    __table_args__ = (
        Index("ix_ingestion_jobs_status_next", "status", "next_attempt_at"),
        Index("ix_ingestion_jobs_document", "document_id"),
        Index("ix_ingestion_jobs_tenant_owner", "tenant", "owner"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(128))
    owner: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(String(1024))
    mime_type: Mapped[str] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    legal_basis_id: Mapped[str | None] = mapped_column(String(64))
    """Set when a held upload is released on a recorded legal basis: it is then indexed
    whatever its sensitivity."""
    status: Mapped[str] = mapped_column(String(16), default="queued")
    sensitivity: Mapped[str | None] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(32), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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


# --- memories, legal bases, store vector index (issue 5; migration 0009) ---


class LegalBasis(Base):
    """A recorded legal basis for processing one data subject's sensitive data for a
    purpose: ``consent`` given by the subject, or another Art. 6 basis (``contract``,
    ``legal_obligation``, ``vital_interests``, ``public_task``, ``legitimate_interests``)
    recorded by someone with a note saying why. ``categories`` lists the sensitivities it
    covers (``special``, ``financial``). Withdrawn bases stay as the record of withdrawal."""

    __tablename__ = "legal_bases"
    __table_args__ = (Index("ix_legal_bases_tenant_subject", "tenant", "subject"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    subject: Mapped[str] = mapped_column(String(256))
    basis: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(256))
    categories: Mapped[list[Any]] = mapped_column(JSON, default=list)
    recorded_by: Mapped[str] = mapped_column(String(256))
    note: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by: Mapped[str | None] = mapped_column(String(256))


class Memory(Base):
    """A long-term memory. ``id`` is the integer rowid the FTS5 index points at;
    ``memory_id`` is the opaque id Chroma holds beside the vector. ``content_key`` (a digest
    of the scope and the normalised text) makes writes idempotent. ``status``: ``active``
    or ``awaiting_basis`` (sensitive, not embedded, invisible to recall until a legal basis
    is recorded)."""

    __tablename__ = "memories"
    __table_args__ = (
        UniqueConstraint("tenant", "user", "content_key", name="uq_memories_scope_content"),
        Index("ix_memories_tenant_user_status", "tenant", "user", "status"),
        Index("ix_memories_expires_at", "expires_at"),
        Index("ix_memories_basis_id", "basis_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    memory_id: Mapped[str] = mapped_column(String(32), unique=True)
    tenant: Mapped[str] = mapped_column(String(128))
    user: Mapped[str] = mapped_column(String(256))
    assistant_id: Mapped[str | None] = mapped_column(String(128))
    thread_id: Mapped[str | None] = mapped_column(String(64))
    content_key: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(256))
    legal_basis: Mapped[str | None] = mapped_column(String(32))
    basis_id: Mapped[str | None] = mapped_column(ForeignKey("legal_bases.id", ondelete="SET NULL"))
    sensitivity: Mapped[str] = mapped_column(String(16), default="none")
    findings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """Counts of privacy findings by type; never the matched text."""
    status: Mapped[str] = mapped_column(String(16), default="active")
    embedding_model: Mapped[str | None] = mapped_column(String(256))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StoreItemVector(Base):
    """One indexed field of a LangGraph store item: the opaque id of its vector in Chroma
    (the tenant's ``store`` partition). The text stays in ``store_items.value``."""

    __tablename__ = "store_item_vectors"
    __table_args__ = (Index("ix_store_item_vectors_item", "tenant", "namespace", "key"),)

    vector_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128))
    namespace: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    field: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- provider credentials (issue 6: bring your own key; migration 0010) ---


class ProviderCredentialRow(Base):
    """A tenant's own API key for one model provider, sealed with AES-GCM (see
    providers/credentials.py); ``key_hint`` is its last 4 characters, for listings.
    ``base_url`` is the normalised server an ``openai-compatible`` key belongs to (``''``
    for openai/google; a compatible row with ``''`` predates migration 0013 and is unused)."""

    __tablename__ = "provider_credentials"

    tenant: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    base_url: Mapped[str] = mapped_column(
        String(512), primary_key=True, default="", server_default=""
    )
    ciphertext: Mapped[str] = mapped_column(Text)
    key_hint: Mapped[str] = mapped_column(String(16))
    created_by: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
