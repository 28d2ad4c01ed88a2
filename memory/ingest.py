"""Document ingestion: uploads become jobs; a worker extracts, scans, chunks, embeds, indexes.

Flow of one upload:

1. ``submit`` (request time, cheap): size and type are checked from the bytes (PDF and DOCX
   are opened), and a document row plus a queued job holding the bytes are written in one
   transaction. Bad input raises ``DocumentRejectedError`` and writes nothing. The same
   content under the same source is a no-op; changed content queues a replacement.
2. A worker claims the job (lease; an expired lease is claimed again after a crash) and
   runs it: extract → privacy scan → chunk → embed → index. Progress events are stored on
   the job and passed to an optional in-process listener.
3. Held content (sensitivity in ``hold_sensitivities``: special and financial by default)
   is not chunked, embedded or indexed: the document becomes ``awaiting_basis`` and the
   job keeps the bytes until the legal-basis flow releases or deletes them.
4. Indexing is all-or-nothing: vectors for fresh chunk ids are added first, then one SQL
   transaction swaps the document's old chunks for the new (the full-text index follows by
   trigger), then the old vectors are deleted. A failure before the commit removes the
   fresh vectors, so no chunk row and no vector of a failed attempt remains; the old
   version keeps serving until the swap.
5. Bad input found while extracting (a PDF that opens but cannot be read) fails the job at
   once; other errors (embedding, vector store, database) are retried with exponential
   backoff and, after ``max_attempts``, leave the job ``dead`` (the dead-letter state)
   with its bytes kept for ``retry_job``.

Chroma receives only opaque chunk ids and vectors, in the owner's (tenant, user) scope.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import structlog
from opentelemetry import trace
from sqlalchemy import ColumnElement, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from identity import Principal
from memory.chunking import DEFAULT_MAX_TOKENS, DEFAULT_OVERLAP_TOKENS, Chunk, chunk_pages
from memory.document_metrics import (
    DOCUMENT_CHUNKS,
    DOCUMENT_INGEST_SECONDS,
    DOCUMENT_JOBS,
)
from memory.document_types import (
    ACTIVE_JOB_STATUSES,
    DocumentNotFoundError,
    DocumentPermissionError,
    DocumentRejectedError,
    DocumentStatus,
    DocumentView,
    JobStatus,
    JobView,
    ProgressEvent,
    ProgressListener,
    Submission,
)
from memory.embeddings import Embedder
from memory.extract import DEFAULT_MAX_BYTES, Extracted, extract, inspect
from memory.memories import covering_basis, covers
from memory.types import Scope
from memory.vectors import VectorIndex
from privacy import DEFAULT_OPTIONS, ScanOptions, Sensitivity, scan_text
from store import Database
from store.models import Document, DocumentChunk, DocumentGrant, IngestionJob, LegalBasis

log = structlog.get_logger(__name__)
_tracer = trace.get_tracer(__name__)

_MAX_EVENTS = 50
_MAX_SOURCE = 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """An opaque id: 128 random bits, hex (means nothing outside our tables)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class DocumentConfig:
    """Limits and policy of document ingestion (built from settings by the caller)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    chunk_tokens: int = DEFAULT_MAX_TOKENS
    chunk_overlap: int = DEFAULT_OVERLAP_TOKENS
    hold_sensitivities: frozenset[Sensitivity] = field(
        default_factory=lambda: frozenset({Sensitivity.SPECIAL, Sensitivity.FINANCIAL})
    )
    """Content this sensitive is stored but not embedded or indexed (``awaiting_basis``)."""
    purpose: str = "documents"
    """The processing purpose a legal basis must cover (or ``*``) to release held content."""
    retention: timedelta | None = None
    """Default lifetime of a document and its chunks (``expires_at``); None: no expiry."""
    max_attempts: int = 3
    retry_base_seconds: float = 2.0
    lease_seconds: float = 300.0
    embed_batch: int = 32
    scan_options: ScanOptions = DEFAULT_OPTIONS


def _check_principal_ids(tenant: str, owner: str) -> None:
    for label, value in (("tenant", tenant), ("user", owner)):
        if not isinstance(value, str) or not value.strip():
            raise DocumentRejectedError("bad_request", f"{label} must be a non-empty string")


def _clean_names(values: Sequence[str], label: str) -> list[str]:
    names = sorted({value.strip() for value in values if value and value.strip()})
    for name in names:
        if len(name) > 256:
            raise DocumentRejectedError("bad_request", f"a shared-with {label} is too long")
    return names


class _Abandoned(Exception):
    """The job's document was deleted, or the job lost its lease, while it ran."""


class DocumentIngestor:
    """Submits uploads and runs ingestion jobs against one store, vector index and embedder."""

    def __init__(
        self,
        db: Database,
        vectors: VectorIndex,
        embedder: Embedder,
        config: DocumentConfig | None = None,
    ) -> None:
        self.db = db
        self.vectors = vectors
        self.embedder = embedder
        self.config = config or DocumentConfig()
        self._wake = asyncio.Event()

    # --- submission ------------------------------------------------------------------

    async def submit(
        self,
        *,
        tenant: str,
        owner: str,
        data: bytes,
        source: str,
        declared_type: str | None = None,
        shared_with_users: Sequence[str] = (),
        shared_with_roles: Sequence[str] = (),
        expires_at: datetime | None = None,
    ) -> Submission:
        """Queue ``data`` for ingestion as ``source`` (a file name or path) of ``owner``.

        Raises:
            DocumentRejectedError: empty, oversized, unsupported, mismatched or damaged
                input (nothing is written).
        """
        _check_principal_ids(tenant, owner)
        source = (source or "").strip()
        if not source or len(source) > _MAX_SOURCE:
            raise DocumentRejectedError(
                "bad_request", f"the source name must be 1-{_MAX_SOURCE} characters"
            )
        users = _clean_names(shared_with_users, "user")
        roles = _clean_names(shared_with_roles, "role")
        mime = await asyncio.to_thread(
            inspect, data, filename=source, declared=declared_type, max_bytes=self.config.max_bytes
        )
        digest = hashlib.sha256(data).hexdigest()
        now = utcnow()
        if expires_at is None and self.config.retention is not None:
            expires_at = now + self.config.retention
        async with self.db.transaction() as session:
            doc = (
                await session.execute(
                    select(Document).where(
                        Document.tenant == tenant,
                        Document.owner == owner,
                        Document.source == source,
                    )
                )
            ).scalar_one_or_none()
            if doc is None:
                doc = Document(
                    id=new_id(),
                    tenant=tenant,
                    owner=owner,
                    source=source,
                    mime_type=mime,
                    size_bytes=len(data),
                    status=DocumentStatus.QUEUED,
                    sensitivity=Sensitivity.NONE,
                    findings={},
                    page_count=0,
                    chunk_count=0,
                    version=0,
                    expires_at=expires_at,
                    created_at=now,
                    updated_at=now,
                )
                session.add(doc)
                await session.flush()
            else:
                latest = await self._latest_job(session, doc.id)
                same = latest is not None and latest.content_hash == digest
                if (
                    same
                    and latest is not None
                    and latest.status
                    in (
                        *ACTIVE_JOB_STATUSES,
                        JobStatus.SUCCEEDED,
                        JobStatus.HELD,
                    )
                ):
                    await self._replace_grants(session, doc, users, roles)
                    active = latest.status in ACTIVE_JOB_STATUSES
                    return Submission(doc.id, latest.id if active else None, True, doc.status)
                # Queued versions are outrun, and held bytes of a replaced version go too.
                await session.execute(
                    update(IngestionJob)
                    .where(
                        IngestionJob.document_id == doc.id,
                        IngestionJob.status.in_([JobStatus.QUEUED, JobStatus.HELD]),
                    )
                    .values(status=JobStatus.SUPERSEDED, payload=None, finished_at=now)
                )
                if doc.status != DocumentStatus.READY:
                    doc.status = DocumentStatus.QUEUED
                if expires_at is not None:
                    doc.expires_at = expires_at
            await self._replace_grants(session, doc, users, roles)
            job_id = new_id()
            job = IngestionJob(
                id=job_id,
                document_id=doc.id,
                tenant=tenant,
                owner=owner,
                source=source,
                mime_type=mime,
                size_bytes=len(data),
                content_hash=digest,
                payload=data,
                status=JobStatus.QUEUED,
                stage="queued",
                progress=0.0,
                events=[ProgressEvent(job_id, doc.id, "queued", 0.0, None, now).to_dict()],
                attempts=0,
                max_attempts=self.config.max_attempts,
                next_attempt_at=now,
                expires_at=expires_at,
                created_at=now,
                updated_at=now,
            )
            session.add(job)
            status = doc.status
            document_id = doc.id
        self._wake.set()
        log.info("document queued", document_id=document_id, job_id=job_id, mime_type=mime)
        return Submission(document_id, job_id, False, status)

    async def _latest_job(self, session: AsyncSession, document_id: str) -> IngestionJob | None:
        return (
            await session.execute(
                select(IngestionJob)
                .where(IngestionJob.document_id == document_id)
                .order_by(IngestionJob.created_at.desc(), IngestionJob.id.desc())
                .limit(1)
            )
        ).scalar_one_or_none()

    async def _replace_grants(
        self, session: AsyncSession, doc: Document, users: list[str], roles: list[str]
    ) -> None:
        await session.execute(delete(DocumentGrant).where(DocumentGrant.document_id == doc.id))
        for kind, names in (("user", users), ("role", roles)):
            for name in names:
                if kind == "user" and name == doc.owner:
                    continue
                session.add(
                    DocumentGrant(
                        document_id=doc.id,
                        kind=kind,
                        grantee=name,
                        tenant=doc.tenant,
                        owner=doc.owner,
                        expires_at=doc.expires_at,
                    )
                )

    # --- running jobs ----------------------------------------------------------------

    async def claim(self, job_id: str | None = None) -> str | None:
        """Take a due job (or the given one) for this process: ``running`` with a lease.
        A ``running`` job whose lease ran out (its worker died) is due again."""
        now = utcnow()
        async with self.db.transaction() as session:
            due = or_(
                (IngestionJob.status == JobStatus.QUEUED) & (IngestionJob.next_attempt_at <= now),
                (IngestionJob.status == JobStatus.RUNNING) & (IngestionJob.lease_until < now),
            )
            query = select(IngestionJob).where(due)
            if job_id is not None:
                query = query.where(IngestionJob.id == job_id)
            query = query.order_by(IngestionJob.next_attempt_at).limit(1)
            job = (
                await session.execute(query.with_for_update(skip_locked=True))
            ).scalar_one_or_none()
            if job is None:
                return None
            job.status = JobStatus.RUNNING
            job.attempts += 1
            job.lease_until = now + timedelta(seconds=self.config.lease_seconds)
            await session.execute(
                update(Document)
                .where(Document.id == job.document_id, Document.status != DocumentStatus.READY)
                .values(status=DocumentStatus.PROCESSING, updated_at=now)
            )
            return job.id

    async def run_next(self, listener: ProgressListener | None = None) -> JobView | None:
        """Claim and run one due job; None when there is none."""
        job_id = await self.claim()
        if job_id is None:
            return None
        return await self._run(job_id, listener)

    async def run_job(self, job_id: str, listener: ProgressListener | None = None) -> JobView:
        """Run ``job_id`` now, in this task (the CLI's inline mode), retrying in place until
        it succeeds, is held, fails or goes dead.

        Raises:
            DocumentNotFoundError: no such job, or it is not due (another worker has it).
        """
        while True:
            claimed = await self.claim(job_id)
            if claimed is None:
                view = await self.job(job_id)
                if view.status == JobStatus.QUEUED:  # waiting for its retry time
                    async with self.db.session() as session:
                        row = await session.get(IngestionJob, job_id)
                    wait = (row.next_attempt_at - utcnow()).total_seconds() if row else 0
                    await asyncio.sleep(max(0.0, min(wait, 60.0)))
                    continue
                if view.status == JobStatus.RUNNING:
                    raise DocumentNotFoundError(f"job {job_id} is running in another worker")
                return view
            view = await self._run(claimed, listener)
            if view.status != JobStatus.QUEUED:
                return view

    async def retry_job(self, job_id: str) -> None:
        """Queue a dead job again (its bytes were kept).

        Raises:
            DocumentNotFoundError: no dead job with that id.
        """
        async with self.db.transaction() as session:
            job = await session.get(IngestionJob, job_id)
            if job is None or job.status != JobStatus.DEAD or job.payload is None:
                raise DocumentNotFoundError(f"no dead job {job_id} to retry")
            job.status = JobStatus.QUEUED
            job.attempts = 0
            job.next_attempt_at = utcnow()
            job.error_code = job.error_message = None
            job.finished_at = None
        self._wake.set()

    async def release_held(self, document_id: str, *, legal_basis_id: str) -> str:
        """Queue a document held for a legal basis for indexing, now that the basis
        ``legal_basis_id`` is recorded (the caller checks that it covers the document's
        owner and purpose). Returns the job id.

        Raises:
            DocumentNotFoundError: no document awaiting a basis with that id.
        """
        now = utcnow()
        async with self.db.transaction() as session:
            doc = await session.get(Document, document_id)
            job = await self._latest_job(session, document_id) if doc is not None else None
            if (
                doc is None
                or doc.status != DocumentStatus.AWAITING_BASIS
                or job is None
                or job.status != JobStatus.HELD
                or job.payload is None
            ):
                raise DocumentNotFoundError(f"no document {document_id} awaiting a legal basis")
            job.status = JobStatus.QUEUED
            job.legal_basis_id = legal_basis_id
            job.attempts = 0
            job.next_attempt_at = now
            job.finished_at = None
            job.events = [
                *(job.events or []),
                ProgressEvent(job.id, doc.id, "released", 0.0, None, now).to_dict(),
            ][-_MAX_EVENTS:]
            doc.status = DocumentStatus.QUEUED
            job_id = job.id
        self._wake.set()
        return job_id

    async def release_for_basis(self, basis: LegalBasis) -> list[str]:
        """Queue every held document of ``basis``'s subject that it covers (sensitivity and
        purpose) for indexing under it; returns the queued job ids."""
        held = await self._held_rows(basis.tenant, basis.subject)
        job_ids: list[str] = []
        for doc in held:
            if not covers(basis, doc.sensitivity, self.config.purpose):
                continue
            try:
                job_ids.append(await self.release_held(doc.id, legal_basis_id=basis.id))
            except DocumentNotFoundError:  # replaced or deleted meanwhile
                continue
        return job_ids

    async def held_documents(self, tenant: str, owner: str) -> list[DocumentView]:
        """``owner``'s documents awaiting a legal basis, oldest first."""
        async with self.db.session() as session:
            rows = await self._held_rows(tenant, owner, session)
            return [await self._view(session, doc, with_job=False) for doc in rows]

    async def _held_rows(
        self, tenant: str, owner: str, session: AsyncSession | None = None
    ) -> list[Document]:
        statement = (
            select(Document)
            .where(
                Document.tenant == tenant,
                Document.owner == owner,
                Document.status == DocumentStatus.AWAITING_BASIS,
            )
            .order_by(Document.created_at, Document.id)
        )
        if session is not None:
            return list((await session.execute(statement)).scalars())
        async with self.db.session() as own:
            return list((await own.execute(statement)).scalars())

    async def delete_for_basis(self, basis_id: str) -> int:
        """Delete the documents admitted under ``basis_id`` (its withdrawal): indexed ones
        and ones released but not yet indexed. Returns how many."""
        pending = select(IngestionJob.document_id).where(
            IngestionJob.legal_basis_id == basis_id,
            IngestionJob.status.in_([s.value for s in ACTIVE_JOB_STATUSES]),
        )
        return await self.delete_where(
            or_(Document.legal_basis_id == basis_id, Document.id.in_(pending))
        )

    async def reject_held(self, tenant: str, owner: str) -> int:
        """Delete ``owner``'s documents still awaiting a legal basis (refused)."""
        return await self.delete_where(
            (Document.tenant == tenant)
            & (Document.owner == owner)
            & (Document.status == DocumentStatus.AWAITING_BASIS)
        )

    async def delete_where(self, condition: ColumnElement[bool]) -> int:
        """Delete the documents matching ``condition`` with their chunks, grants, jobs
        (and held bytes), full-text entries and vectors. Returns how many."""
        async with self.db.transaction() as session:
            docs = list((await session.execute(select(Document).where(condition))).scalars())
            removed = [await self._delete_rows(session, doc) for doc in docs]
        for scope, ids in removed:
            await self._delete_vectors(scope, ids)
        if docs:
            await purge_deleted_fulltext(self.db)
        return len(docs)

    async def _delete_rows(self, session: AsyncSession, doc: Document) -> tuple[Scope, list[str]]:
        old_ids = await self._delete_chunk_rows(session, doc.id)
        await session.execute(delete(IngestionJob).where(IngestionJob.document_id == doc.id))
        await session.execute(delete(DocumentGrant).where(DocumentGrant.document_id == doc.id))
        await session.delete(doc)
        return Scope(doc.tenant, doc.owner), old_ids

    async def _covering_basis(self, job: IngestionJob, sensitivity: Sensitivity) -> str | None:
        """The id of an unwithdrawn basis of the owner covering ``sensitivity`` for this
        purpose, recorded on the job; None when there is none (the content is held)."""
        async with self.db.transaction() as session:
            basis = await covering_basis(
                session, job.tenant, job.owner, sensitivity.value, self.config.purpose
            )
            current = await session.get(IngestionJob, job.id)
            if basis is None or current is None or current.status != JobStatus.RUNNING:
                return None
            current.legal_basis_id = basis.id
        job.legal_basis_id = basis.id
        return basis.id

    def wake(self) -> None:
        """Tell this ingestor's worker that jobs are due (another component queued them)."""
        self._wake.set()

    async def _progress(
        self,
        job_id: str,
        document_id: str,
        stage: str,
        progress: float,
        listener: ProgressListener | None,
        message: str | None = None,
        *,
        persist: bool = True,
    ) -> None:
        now = utcnow()
        event = ProgressEvent(job_id, document_id, stage, progress, message, now)
        if listener is not None:
            listener(event)
        if not persist:
            return
        async with self.db.transaction() as session:
            job = await session.get(IngestionJob, job_id)
            if job is None or job.status != JobStatus.RUNNING:
                raise _Abandoned(job_id)
            job.stage = stage
            job.progress = progress
            job.events = [*(job.events or []), event.to_dict()][-_MAX_EVENTS:]
            job.lease_until = now + timedelta(seconds=self.config.lease_seconds)

    async def _run(self, job_id: str, listener: ProgressListener | None) -> JobView:
        async with self.db.session() as session:
            job = await session.get(IngestionJob, job_id)
        if job is None:  # deleted with its document between claim and run
            raise DocumentNotFoundError(f"no ingestion job {job_id}")
        if job.payload is None:
            await self._finish_failed(
                job, JobStatus.FAILED, "no_payload", "the job's upload is gone", listener
            )
            return await self.job(job.id)
        fresh_ids: list[str] = []
        scope = Scope(job.tenant, job.owner)
        started = time.monotonic()
        with _tracer.start_as_current_span(
            "documents.ingest", attributes={"document.id": job.document_id, "job.id": job.id}
        ):
            await self._attempt(job, scope, fresh_ids, listener)
        view = await self.job(job.id)
        outcome = view.status if view.status != JobStatus.QUEUED else "retry"
        DOCUMENT_JOBS.labels(outcome).inc()
        DOCUMENT_INGEST_SECONDS.labels(outcome).observe(time.monotonic() - started)
        return view

    async def _attempt(
        self,
        job: IngestionJob,
        scope: Scope,
        fresh_ids: list[str],
        listener: ProgressListener | None,
    ) -> None:
        assert job.payload is not None
        try:
            await self._progress(job.id, job.document_id, "extracting", 0.05, listener)
            extracted = await asyncio.to_thread(
                extract, job.payload, job.mime_type, filename=job.source
            )
            await self._progress(job.id, job.document_id, "scanning", 0.15, listener)
            sensitivity, findings = await asyncio.to_thread(self._scan_document, extracted)
            held = sensitivity in self.config.hold_sensitivities
            if held and not job.legal_basis_id and not await self._covering_basis(job, sensitivity):
                await self._hold(job, extracted, sensitivity, findings, listener)
            else:
                chunks = chunk_pages(
                    extracted.pages,
                    max_tokens=self.config.chunk_tokens,
                    overlap=self.config.chunk_overlap,
                )
                chunk_levels = await asyncio.to_thread(self._scan_chunks, chunks)
                await self._progress(
                    job.id, job.document_id, "embedding", 0.25, listener, f"{len(chunks)} chunks"
                )
                vectors = await self._embed(job, chunks, listener)
                await self._progress(job.id, job.document_id, "indexing", 0.9, listener)
                fresh_ids.extend(new_id() for _ in chunks)
                await asyncio.to_thread(self.vectors.add, scope, fresh_ids, vectors)
                old_ids = await self._swap_chunks(
                    job, extracted, chunks, chunk_levels, fresh_ids, sensitivity, findings
                )
                fresh_ids.clear()  # committed: no longer ours to clean up
                DOCUMENT_CHUNKS.inc(len(chunks))
                await self._delete_vectors(scope, old_ids)
            await self._progress(job.id, job.document_id, "done", 1.0, listener, persist=False)
        except _Abandoned:
            log.info("ingestion job abandoned", job_id=job.id)
        except DocumentRejectedError as exc:
            await self._finish_failed(job, JobStatus.FAILED, exc.code, str(exc), listener)
        except asyncio.CancelledError:
            await self._delete_vectors(scope, fresh_ids)
            raise
        except Exception as exc:
            code = str(getattr(exc, "code", "") or type(exc).__name__)
            await self._retry_or_bury(job, code, str(exc) or code, listener)
        finally:
            await self._delete_vectors(scope, fresh_ids)

    def _scan_document(self, extracted: Extracted) -> tuple[Sensitivity, dict[str, int]]:
        levels: list[Sensitivity] = []
        counts: Counter[str] = Counter()
        for page in extracted.pages:
            result = scan_text(page.text, self.config.scan_options)
            levels.append(result.sensitivity)
            counts.update(finding.type.value for finding in result.findings)
        return Sensitivity.highest(levels), dict(sorted(counts.items()))

    def _scan_chunks(self, chunks: list[Chunk]) -> list[Sensitivity]:
        return [scan_text(chunk.text, self.config.scan_options).sensitivity for chunk in chunks]

    async def _embed(
        self, job: IngestionJob, chunks: list[Chunk], listener: ProgressListener | None
    ) -> np.ndarray:
        batch = self.config.embed_batch
        parts: list[np.ndarray] = []
        persisted = 0.25
        for start in range(0, len(chunks), batch):
            texts = [chunk.text for chunk in chunks[start : start + batch]]
            parts.append(await self.embedder.aembed(texts))
            done = min(len(chunks), start + batch)
            progress = 0.25 + 0.6 * done / len(chunks)
            persist = progress - persisted >= 0.1 or done == len(chunks)
            if persist:
                persisted = progress
            await self._progress(
                job.id,
                job.document_id,
                "embedding",
                progress,
                listener,
                f"{done}/{len(chunks)} chunks",
                persist=persist,
            )
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    async def _hold(
        self,
        job: IngestionJob,
        extracted: Extracted,
        sensitivity: Sensitivity,
        findings: dict[str, int],
        listener: ProgressListener | None,
    ) -> None:
        """Store the document as awaiting a legal basis: no chunks, no vectors; the bytes
        stay on the job. A previous version's chunks go (its content was replaced)."""
        now = utcnow()
        async with self.db.transaction() as session:
            current = await session.get(IngestionJob, job.id)
            doc = await session.get(Document, job.document_id)
            if current is None or doc is None or current.status != JobStatus.RUNNING:
                raise _Abandoned(job.id)
            old_ids = await self._delete_chunk_rows(session, doc.id)
            doc.status = DocumentStatus.AWAITING_BASIS
            doc.sensitivity = sensitivity
            doc.findings = findings
            doc.content_hash = job.content_hash
            doc.mime_type = job.mime_type
            doc.size_bytes = job.size_bytes
            doc.page_count = len(extracted.pages)
            doc.chunk_count = 0
            doc.version += 1
            doc.error_code = doc.error_message = None
            doc.updated_at = now
            current.status = JobStatus.HELD
            current.sensitivity = sensitivity
            current.stage = "awaiting_basis"
            current.progress = 1.0
            current.lease_until = None
            current.finished_at = now
            current.events = [
                *(current.events or []),
                ProgressEvent(
                    job.id, doc.id, "awaiting_basis", 1.0, f"{sensitivity.value} content held", now
                ).to_dict(),
            ][-_MAX_EVENTS:]
        await self._delete_vectors(Scope(job.tenant, job.owner), old_ids)
        if listener is not None:
            listener(ProgressEvent(job.id, job.document_id, "awaiting_basis", 1.0, None, now))
        log.info("document held for a legal basis", document_id=job.document_id)

    async def _delete_chunk_rows(self, session: AsyncSession, document_id: str) -> list[str]:
        old_ids = list(
            (
                await session.execute(
                    select(DocumentChunk.chunk_id).where(DocumentChunk.document_id == document_id)
                )
            ).scalars()
        )
        await session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == document_id))
        return old_ids

    async def _swap_chunks(
        self,
        job: IngestionJob,
        extracted: Extracted,
        chunks: list[Chunk],
        levels: list[Sensitivity],
        fresh_ids: list[str],
        sensitivity: Sensitivity,
        findings: dict[str, int],
    ) -> list[str]:
        """Replace the document's chunks in one transaction; returns the old chunk ids."""
        now = utcnow()
        async with self.db.transaction() as session:
            current = await session.get(IngestionJob, job.id)
            doc = await session.get(Document, job.document_id)
            if current is None or doc is None or current.status != JobStatus.RUNNING:
                raise _Abandoned(job.id)
            old_ids = await self._delete_chunk_rows(session, doc.id)
            session.add_all(
                DocumentChunk(
                    chunk_id=chunk_id,
                    document_id=doc.id,
                    tenant=doc.tenant,
                    owner=doc.owner,
                    seq=chunk.seq,
                    page=chunk.page,
                    text=chunk.text,
                    token_count=chunk.token_count,
                    content_hash=hashlib.sha256(chunk.text.encode()).hexdigest(),
                    sensitivity=level,
                    status="indexed",
                    embedding_model=self.embedder.model_id,
                    expires_at=doc.expires_at,
                    created_at=now,
                )
                for chunk, level, chunk_id in zip(chunks, levels, fresh_ids, strict=True)
            )
            doc.status = DocumentStatus.READY
            doc.sensitivity = sensitivity
            doc.findings = findings
            doc.content_hash = job.content_hash
            doc.mime_type = job.mime_type
            doc.size_bytes = job.size_bytes
            doc.page_count = len(extracted.pages)
            doc.chunk_count = len(chunks)
            doc.version += 1
            doc.error_code = doc.error_message = None
            doc.legal_basis_id = current.legal_basis_id
            doc.updated_at = now
            current.status = JobStatus.SUCCEEDED
            current.sensitivity = sensitivity
            current.payload = None  # minimisation: the text now lives in the chunks
            current.stage = "done"
            current.progress = 1.0
            current.lease_until = None
            current.finished_at = now
            current.events = [
                *(current.events or []),
                ProgressEvent(job.id, doc.id, "done", 1.0, f"{len(chunks)} chunks", now).to_dict(),
            ][-_MAX_EVENTS:]
        log.info("document indexed", document_id=job.document_id, chunks=len(chunks))
        return old_ids

    async def _delete_vectors(self, scope: Scope, ids: list[str]) -> None:
        if not ids:
            return
        try:
            await asyncio.to_thread(self.vectors.delete, scope, ids)
            ids.clear()
        except Exception:  # orphans are harmless to retrieval (ids resolve through SQL)
            log.exception("could not delete vectors", count=len(ids))

    async def _finish_failed(
        self,
        job: IngestionJob,
        status: JobStatus,
        code: str,
        message: str,
        listener: ProgressListener | None,
    ) -> None:
        now = utcnow()
        async with self.db.transaction() as session:
            current = await session.get(IngestionJob, job.id)
            doc = await session.get(Document, job.document_id)
            if current is None or doc is None:
                return
            current.status = status
            current.error_code = code
            current.error_message = message
            current.lease_until = None
            current.finished_at = now
            if status == JobStatus.FAILED:
                current.payload = None  # bad input is never retried
            current.events = [
                *(current.events or []),
                ProgressEvent(
                    job.id, doc.id, status.value, current.progress, message, now
                ).to_dict(),
            ][-_MAX_EVENTS:]
            if doc.version == 0 or not doc.chunk_count:
                doc.status = DocumentStatus.FAILED
            else:  # the previous version keeps serving
                doc.status = DocumentStatus.READY
            doc.error_code = code
            doc.error_message = message
            doc.updated_at = now
        if listener is not None:
            listener(ProgressEvent(job.id, job.document_id, status.value, 1.0, message, now))
        log.warning("ingestion job %s", status.value, job_id=job.id, error=code)

    async def _retry_or_bury(
        self, job: IngestionJob, code: str, message: str, listener: ProgressListener | None
    ) -> None:
        async with self.db.session() as session:
            current = await session.get(IngestionJob, job.id)
        if current is None:
            return
        if current.attempts >= current.max_attempts:
            await self._finish_failed(job, JobStatus.DEAD, code, message, listener)
            return
        delay = self.config.retry_base_seconds * 2 ** (current.attempts - 1)
        now = utcnow()
        async with self.db.transaction() as session:
            row = await session.get(IngestionJob, job.id)
            if row is None:
                return
            row.status = JobStatus.QUEUED
            row.next_attempt_at = now + timedelta(seconds=delay)
            row.lease_until = None
            row.error_code = code
            row.error_message = message
            row.events = [
                *(row.events or []),
                ProgressEvent(
                    job.id, job.document_id, "retry", row.progress, f"{code}: {message}", now
                ).to_dict(),
            ][-_MAX_EVENTS:]
        if listener is not None:
            listener(ProgressEvent(job.id, job.document_id, "retry", 0.0, message, now))
        log.warning("ingestion job will retry", job_id=job.id, error=code, delay=delay)

    # --- reading and deleting ----------------------------------------------------------

    async def job(self, job_id: str) -> JobView:
        """Raises: DocumentNotFoundError."""
        async with self.db.session() as session:
            row = await session.get(IngestionJob, job_id)
        if row is None:
            raise DocumentNotFoundError(f"no ingestion job {job_id}")
        return _job_view(row)

    async def get(self, principal: Principal, document_id: str) -> DocumentView:
        """The document and its latest job, if ``principal`` owns it (or reads the tenant).

        Raises:
            DocumentNotFoundError: no such document visible to ``principal``.
        """
        async with self.db.session() as session:
            doc = await session.get(Document, document_id)
            if doc is None or not _may_manage(principal, doc, "tenant:read"):
                raise DocumentNotFoundError(f"no document {document_id}")
            return await self._view(session, doc, with_job=True)

    async def list_documents(
        self, principal: Principal, *, limit: int = 50, offset: int = 0
    ) -> list[DocumentView]:
        """The principal's own documents, newest first."""
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Document)
                    .where(Document.tenant == principal.tenant, Document.owner == principal.user)
                    .order_by(Document.created_at.desc(), Document.id)
                    .limit(limit)
                    .offset(offset)
                )
            ).scalars()
            return [await self._view(session, doc, with_job=True) for doc in rows]

    async def delete(self, principal: Principal, document_id: str) -> None:
        """Delete a document: rows (chunks, grants, jobs and bytes by cascade), full-text
        entries (by trigger) and vectors.

        Raises:
            DocumentNotFoundError: no such document visible to ``principal``.
            DocumentPermissionError: visible, but neither owned nor erasable by them.
        """
        async with self.db.transaction() as session:
            doc = await session.get(Document, document_id)
            if doc is None or not _may_manage(principal, doc, "tenant:read"):
                raise DocumentNotFoundError(f"no document {document_id}")
            if not _may_manage(principal, doc, "data:erase"):
                raise DocumentPermissionError(
                    f"document {document_id} belongs to another user",
                    hint="only its owner or an admin may delete it",
                )
            scope, old_ids = await self._delete_rows(session, doc)
        await self._delete_vectors(scope, old_ids)
        await purge_deleted_fulltext(self.db)

    async def _view(self, session: AsyncSession, doc: Document, *, with_job: bool) -> DocumentView:
        grants = (
            await session.execute(
                select(DocumentGrant.kind, DocumentGrant.grantee).where(
                    DocumentGrant.document_id == doc.id
                )
            )
        ).all()
        job = await self._latest_job(session, doc.id) if with_job else None
        return DocumentView(
            id=doc.id,
            tenant=doc.tenant,
            owner=doc.owner,
            source=doc.source,
            mime_type=doc.mime_type,
            size_bytes=doc.size_bytes,
            content_hash=doc.content_hash,
            status=doc.status,
            sensitivity=doc.sensitivity,
            findings=dict(doc.findings or {}),
            page_count=doc.page_count,
            chunk_count=doc.chunk_count,
            version=doc.version,
            shared_with_users=sorted(g for kind, g in grants if kind == "user"),
            shared_with_roles=sorted(g for kind, g in grants if kind == "role"),
            error_code=doc.error_code,
            error_message=doc.error_message,
            expires_at=doc.expires_at,
            created_at=doc.created_at,
            updated_at=doc.updated_at,
            job=_job_view(job) if job is not None else None,
        )


async def purge_deleted_fulltext(db: Database) -> None:
    """Make deleted chunks' words unreadable in the full-text index.

    SQLite's FTS5 only marks deleted entries until its segments are merged (the
    ``secure-delete`` option that avoids this needs SQLite 3.42), so the tokens of a
    deleted chunk stay in ``document_chunks_fts_data``; ``optimize`` merges every segment
    and drops them (with ``secure_delete`` on, freed pages are zeroed). It rewrites the
    whole index: call it after deletions that must leave no trace (a user's delete,
    erasure, retention sweeps), not after every replacement. PostgreSQL's tsvector lives in
    the row and goes with it (VACUUM reclaims the space).
    """
    if not db.is_sqlite:
        return
    async with db.transaction() as session:
        await session.execute(
            text("INSERT INTO document_chunks_fts(document_chunks_fts) VALUES ('optimize')")
        )


async def count_pending_jobs(db: Database) -> int:
    """Jobs queued or running (a worker should run while there are any)."""
    async with db.session() as session:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(IngestionJob)
                    .where(IngestionJob.status.in_([s.value for s in ACTIVE_JOB_STATUSES]))
                )
            ).scalar_one()
        )


def _may_manage(principal: Principal, doc: Document, tenant_scope: str) -> bool:
    if doc.tenant != principal.tenant:
        return False
    return doc.owner == principal.user or principal.has_scope(tenant_scope)


def _job_view(job: IngestionJob) -> JobView:
    events: list[dict[str, Any]] = list(job.events or [])
    return JobView(
        id=job.id,
        document_id=job.document_id,
        status=job.status,
        stage=job.stage,
        progress=job.progress,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        error_code=job.error_code,
        error_message=job.error_message,
        events=events,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


class IngestionWorker:
    """An asyncio loop running due ingestion jobs one at a time (embedding is CPU-bound;
    one job at a time keeps the API responsive on small machines). ``submit`` on the same
    ingestor wakes it at once; retries and other processes' jobs are found by polling."""

    def __init__(self, ingestor: DocumentIngestor, *, poll_seconds: float = 2.0) -> None:
        self.ingestor = ingestor
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._stopping.clear()
            self._task = asyncio.create_task(self._loop(), name="document-ingestion")

    async def stop(self) -> None:
        self._stopping.set()
        self.ingestor._wake.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _loop(self) -> None:
        wake = self.ingestor._wake
        while not self._stopping.is_set():
            wake.clear()
            try:
                ran = await self.ingestor.run_next()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ingestion worker iteration failed")
                ran = None
            if ran is not None:
                continue
            try:
                await asyncio.wait_for(wake.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass
