"""Export of one data subject's data (GDPR Art. 15 access, Art. 20 portability) as JSON.

Everything relaygraph holds about (tenant, user): their threads with the messages and values
of each thread's latest checkpoint, their runs, memories (held ones too), legal bases,
documents with chunk metadata, notes, tickets, outbox e-mails, feedback, tool calls,
approvals they requested, audit entries they caused (with payloads not yet erased), store
items under namespaces naming them, API keys (metadata only, never hashes) and model usage.
Nothing of another user is included: every query filters on the subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import and_, inspect, or_, select

from graphs.serialization import to_jsonable
from store import Database
from store.models import (
    ApiKey,
    Approval,
    AuditEntry,
    AuditPayload,
    Base,
    Document,
    DocumentChunk,
    Feedback,
    LegalBasis,
    Memory,
    Note,
    OutboxEmail,
    ProviderUsage,
    Run,
    StoreItem,
    Thread,
    Ticket,
    ToolCall,
)

EXPORT_FORMAT = "relaygraph.export/1"
_NEVER_EXPORTED = {"key_hash", "payload", "content_key", "salt"}


def row_dict(row: Base, *, skip: Sequence[str] = ()) -> dict[str, Any]:
    """A model row as JSON-able data (column names as in the database)."""
    data: dict[str, Any] = {}
    for attr in inspect(row).mapper.column_attrs:
        name = attr.columns[0].name
        if name in _NEVER_EXPORTED or name in skip:
            continue
        value = getattr(row, attr.key)
        data[name] = value.isoformat() if isinstance(value, datetime) else to_jsonable(value)
    return data


def user_store_namespaces(user: str) -> Any:
    """SQL condition: a store item whose namespace has ``user`` as one of its labels (the
    LangGraph convention ``("memories", user_id)``)."""
    return or_(
        StoreItem.namespace == user,
        StoreItem.namespace.like(f"{_escape(user)}.%", escape="\\"),
        StoreItem.namespace.like(f"%.{_escape(user)}", escape="\\"),
        StoreItem.namespace.like(f"%.{_escape(user)}.%", escape="\\"),
    )


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def thread_values(checkpointer: BaseCheckpointSaver, thread_id: str) -> dict[str, Any] | None:
    """The channel values (messages included) of a thread's latest checkpoint."""
    found = await checkpointer.aget_tuple(
        {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    )
    if found is None:
        return None
    values = found.checkpoint.get("channel_values", {})
    return {
        name: to_jsonable(value)
        for name, value in values.items()
        if not name.startswith("branch:") and not name.startswith("__")
    }


async def export_user(
    *,
    db: Database,
    checkpointer: BaseCheckpointSaver | None,
    tenant: str,
    user: str,
) -> dict[str, Any]:
    """Everything held about (tenant, user), as one JSON-able document."""
    out: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "subject": {"tenant": tenant, "user": user},
        "exported_at": datetime.now(UTC).isoformat(),
    }
    async with db.session() as session:

        async def rows(statement: Any, **kwargs: Any) -> list[dict[str, Any]]:
            return [row_dict(row, **kwargs) for row in (await session.execute(statement)).scalars()]

        threads = list(
            (
                await session.execute(
                    select(Thread)
                    .where(Thread.tenant == tenant, Thread.owner == user)
                    .order_by(Thread.created_at)
                )
            ).scalars()
        )
        thread_ids = [thread.thread_id for thread in threads]
        out["threads"] = [row_dict(thread) for thread in threads]
        out["runs"] = await rows(
            select(Run)
            .where(
                Run.tenant == tenant,
                or_(Run.requester == user, Run.thread_id.in_(thread_ids)),
            )
            .order_by(Run.created_at)
        )
        out["memories"] = await rows(
            select(Memory).where(Memory.tenant == tenant, Memory.user == user).order_by(Memory.id)
        )
        out["legal_bases"] = await rows(
            select(LegalBasis)
            .where(LegalBasis.tenant == tenant, LegalBasis.subject == user)
            .order_by(LegalBasis.recorded_at)
        )
        documents = await rows(
            select(Document)
            .where(Document.tenant == tenant, Document.owner == user)
            .order_by(Document.created_at)
        )
        for document in documents:
            document["chunks"] = await rows(
                select(DocumentChunk)
                .where(DocumentChunk.document_id == document["id"])
                .order_by(DocumentChunk.seq),
                skip=("text",),
            )
        out["documents"] = documents
        out["notes"] = await rows(
            select(Note).where(Note.tenant == tenant, Note.owner == user).order_by(Note.id)
        )
        out["tickets"] = await rows(
            select(Ticket).where(Ticket.tenant == tenant, Ticket.owner == user).order_by(Ticket.id)
        )
        out["outbox"] = await rows(
            select(OutboxEmail)
            .where(OutboxEmail.tenant == tenant, OutboxEmail.sender == user)
            .order_by(OutboxEmail.id)
        )
        out["feedback"] = await rows(
            select(Feedback)
            .where(Feedback.tenant == tenant, Feedback.author == user)
            .order_by(Feedback.id)
        )
        out["tool_calls"] = await rows(
            select(ToolCall)
            .where(ToolCall.tenant == tenant, ToolCall.principal == user)
            .order_by(ToolCall.id)
        )
        out["approvals"] = await rows(
            select(Approval)
            .where(Approval.tenant == tenant, Approval.requester == user)
            .order_by(Approval.created_at)
        )
        audit = (
            await session.execute(
                select(AuditEntry, AuditPayload)
                .outerjoin(AuditPayload, AuditPayload.seq == AuditEntry.seq)
                .where(AuditEntry.tenant == tenant, AuditEntry.actor == user)
                .order_by(AuditEntry.seq)
            )
        ).all()
        out["audit"] = [
            {
                **row_dict(entry),
                "args": None if payload is None else to_jsonable(payload.args),
                "result": None if payload is None else to_jsonable(payload.result),
                "payload_erased": payload is None or payload.erased_at is not None,
            }
            for entry, payload in audit
        ]
        out["store_items"] = await rows(
            select(StoreItem)
            .where(StoreItem.tenant == tenant, user_store_namespaces(user))
            .order_by(StoreItem.namespace, StoreItem.key)
        )
        out["api_keys"] = await rows(
            select(ApiKey).where(ApiKey.tenant == tenant, ApiKey.user == user)
        )
        out["model_usage"] = await rows(
            select(ProviderUsage)
            .where(and_(ProviderUsage.tenant == tenant, ProviderUsage.user == user))
            .order_by(ProviderUsage.id)
        )
    if checkpointer is not None:
        for thread in out["threads"]:
            thread["values"] = await thread_values(checkpointer, thread["thread_id"])
    out["counts"] = {name: len(value) for name, value in out.items() if isinstance(value, list)}
    return out
