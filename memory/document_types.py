"""Public types of document ingestion and retrieval: errors, job and document views, hits.

Other packages (graphs' recall node, tools, the API) import from here; the modules that do
the work (``extract``, ``chunking``, ``ingest``, ``retrieval``) are internal to ``memory``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from memory.types import MemoryStoreError

MIME_TEXT = "text/plain"
MIME_MARKDOWN = "text/markdown"
MIME_HTML = "text/html"
MIME_PDF = "application/pdf"
MIME_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SUPPORTED_TYPES = (MIME_TEXT, MIME_MARKDOWN, MIME_HTML, MIME_PDF, MIME_DOCX)


class DocumentStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    AWAITING_BASIS = "awaiting_basis"
    """Special-category (or held financial) content: stored, not embedded or indexed,
    until a legal basis is recorded."""
    FAILED = "failed"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    HELD = "held"
    FAILED = "failed"
    """Bad input: never retried."""
    DEAD = "dead"
    """Retries exhausted (the dead-letter state); ``retry_job`` queues it again."""
    SUPERSEDED = "superseded"
    """A newer upload of the same source replaced it before it ran."""


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class DocumentError(MemoryStoreError):
    """A document operation failed; ``status`` is the HTTP status an API maps it to."""

    code = "document_error"
    status = 400
    retryable = False


class DocumentRejectedError(DocumentError):
    """Bad input: empty, oversized, of an unsupported type, corrupt, or without text.

    ``code`` says which (``empty_file``, ``too_large``, ``unsupported_type``,
    ``type_mismatch``, ``not_utf8``, ``corrupt_pdf``, ``encrypted_pdf``, ``corrupt_docx``,
    ``no_text``). Nothing is stored for a rejected upload.
    """

    def __init__(self, code: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.status = {"too_large": 413, "unsupported_type": 415, "type_mismatch": 415}.get(
            code, 422
        )


class DocumentNotFoundError(DocumentError):
    code = "not_found"
    status = 404


class DocumentPermissionError(DocumentError):
    code = "forbidden"
    status = 403


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One step of an ingestion job, as stored in the job's ``events`` and sent to
    in-process listeners (the CLI's progress bar)."""

    job_id: str
    document_id: str
    stage: str
    progress: float
    message: str | None = None
    at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"stage": self.stage, "progress": round(self.progress, 3)}
        if self.message:
            data["message"] = self.message
        if self.at is not None:
            data["at"] = self.at.isoformat()
        return data


ProgressListener = Callable[[ProgressEvent], None]


@dataclass(frozen=True, slots=True)
class JobView:
    id: str
    document_id: str
    status: str
    stage: str
    progress: float
    attempts: int
    max_attempts: int
    error_code: str | None
    error_message: str | None
    events: list[dict[str, Any]]
    created_at: datetime
    finished_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "document_id": self.document_id,
            "status": self.status,
            "stage": self.stage,
            "progress": round(self.progress, 3),
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "error": self.error_code,
            "message": self.error_message,
            "events": self.events,
            "created_at": self.created_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


@dataclass(frozen=True, slots=True)
class DocumentView:
    id: str
    tenant: str
    owner: str
    source: str
    mime_type: str | None
    size_bytes: int
    content_hash: str | None
    status: str
    sensitivity: str
    findings: dict[str, int]
    page_count: int
    chunk_count: int
    version: int
    shared_with_users: list[str]
    shared_with_roles: list[str]
    error_code: str | None
    error_message: str | None
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    job: JobView | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.id,
            "tenant": self.tenant,
            "owner": self.owner,
            "source": self.source,
            "mime_type": self.mime_type,
            "size_bytes": self.size_bytes,
            "content_hash": self.content_hash,
            "status": self.status,
            "sensitivity": self.sensitivity,
            "findings": self.findings,
            "page_count": self.page_count,
            "chunk_count": self.chunk_count,
            "version": self.version,
            "shared_with": {"users": self.shared_with_users, "roles": self.shared_with_roles},
            "error": self.error_code,
            "message": self.error_message,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "job": self.job.to_dict() if self.job else None,
        }


@dataclass(frozen=True, slots=True)
class Submission:
    """What an upload became: its document, the job that ingests it (None when the same
    content was already ingested: ``unchanged``)."""

    document_id: str
    job_id: str | None
    unchanged: bool
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "job_id": self.job_id,
            "unchanged": self.unchanged,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True)
class Citation:
    document_id: str
    chunk_id: str
    page: int | None
    score: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "chunk_id": self.chunk_id,
            "page": self.page,
            "score": round(self.score, 6),
            "source": self.source,
        }


@dataclass(slots=True)
class RetrievedChunk:
    """A passage the principal may read. ``trust`` is always ``untrusted``: documents are
    third-party content, so the tools gate treats what follows them as tainted."""

    document_id: str
    chunk_id: str
    page: int | None
    source: str
    text: str
    score: float
    sensitivity: str
    owner: str
    fulltext_rank: int | None = None
    vector_rank: int | None = None
    trust: str = "untrusted"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def citation(self) -> Citation:
        return Citation(self.document_id, self.chunk_id, self.page, self.score, self.source)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.citation.to_dict(),
            "text": self.text,
            "trust": self.trust,
            "sensitivity": self.sensitivity,
            "fulltext_rank": self.fulltext_rank,
            "vector_rank": self.vector_rank,
        }


class QueryRewriter(Protocol):
    """Turns the user's query into one or more search queries (e.g. an LLM expansion);
    each is searched and all lists are fused."""

    def __call__(self, query: str) -> Awaitable[Sequence[str]]: ...


class Reranker(Protocol):
    """Reorders (and may drop) fused hits, e.g. with a cross-encoder. Only ever sees hits
    the principal may read."""

    def __call__(
        self, query: str, hits: list[RetrievedChunk]
    ) -> Awaitable[list[RetrievedChunk]]: ...
