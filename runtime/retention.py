"""Retention: every memory, document, chunk, thread, store item, cache entry and file has an
expiry, and this sweeper deletes what is past it, for real (rows, full-text entries,
vectors, checkpoints, files; SQLite deletes zero their pages with ``secure_delete``).

Expiry comes from the rows' own ``expires_at`` (memories, documents, chunks, ingestion jobs,
store items, provider cache) or from a configured age: threads idle longer than
``thread_ttl`` (deleted through the runner, checkpoints included), files in the files
directory not modified for ``file_ttl``, and per-step trace rows older than ``trace_ttl``.
A thread that is running is never swept.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import and_, delete, or_, select

from memory.memories import Memories
from memory.types import Scope
from memory.vectors import VectorStore
from store import Database
from store.models import (
    Document,
    DocumentChunk,
    IngestionJob,
    ProviderCacheEntry,
    StoreItem,
    StoreItemVector,
    Thread,
    TraceStep,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    """Ages after which data without its own ``expires_at`` goes. None: kept (not advised)."""

    thread_ttl: timedelta | None = timedelta(days=365)
    file_ttl: timedelta | None = timedelta(days=365)
    trace_ttl: timedelta | None = timedelta(days=30)
    """Per-step trace rows older than this go (their runs stay)."""


@dataclass
class SweepReport:
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "deleted": self.deleted}


class RetentionSweeper:
    """Deletes expired data from every store. Safe to run repeatedly and concurrently with
    serving (each step is its own short transaction)."""

    def __init__(
        self,
        *,
        db: Database,
        memories: Memories,
        vectors: VectorStore,
        delete_thread: Callable[[str], Awaitable[None]],
        files_dir: Path | None,
        policy: RetentionPolicy | None = None,
    ) -> None:
        self.db = db
        self.memories = memories
        self.vectors = vectors
        self.delete_thread = delete_thread
        self.files_dir = files_dir
        self.policy = policy or RetentionPolicy()

    async def sweep(self, now: datetime | None = None) -> SweepReport:
        moment = now or datetime.now(UTC)
        report = SweepReport()
        report.deleted["memories"] = await self.memories.sweep_expired(moment)
        report.deleted["documents"], report.deleted["chunks"] = await self._documents(moment)
        report.deleted["store_items"] = await self._store_items(moment)
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(ProviderCacheEntry).where(ProviderCacheEntry.expires_at <= moment)
            )
            report.deleted["cache_entries"] = int(result.rowcount or 0)  # type: ignore[attr-defined]
        report.deleted["trace_steps"] = await self._trace_steps(moment)
        report.deleted["threads"] = await self._threads(moment)
        report.deleted["files"] = await asyncio.to_thread(self._files, moment)
        log.info("retention_swept", **report.deleted)
        return report

    async def _documents(self, now: datetime) -> tuple[int, int]:
        expired_doc = and_(Document.expires_at.is_not(None), Document.expires_at <= now)
        async with self.db.transaction() as session:
            doc_ids = list(
                (await session.execute(select(Document.id).where(expired_doc))).scalars()
            )
            chunk_rows = (
                await session.execute(
                    select(DocumentChunk.tenant, DocumentChunk.owner, DocumentChunk.chunk_id).where(
                        or_(
                            DocumentChunk.document_id.in_(doc_ids),
                            and_(
                                DocumentChunk.expires_at.is_not(None),
                                DocumentChunk.expires_at <= now,
                            ),
                        )
                    )
                )
            ).all()
            if chunk_rows:
                await session.execute(
                    delete(DocumentChunk).where(
                        DocumentChunk.chunk_id.in_([row[2] for row in chunk_rows])
                    )
                )
            await session.execute(
                delete(IngestionJob).where(
                    IngestionJob.expires_at.is_not(None), IngestionJob.expires_at <= now
                )
            )
            if doc_ids:
                await session.execute(delete(Document).where(Document.id.in_(doc_ids)))
        by_scope: dict[tuple[str, str], list[str]] = {}
        for tenant, owner, chunk_id in chunk_rows:
            by_scope.setdefault((tenant, owner), []).append(chunk_id)
        index = self.vectors.index("chunks")
        for (tenant, owner), ids in by_scope.items():
            await asyncio.to_thread(index.delete, Scope(tenant, owner), ids)
        return len(doc_ids), len(chunk_rows)

    async def _store_items(self, now: datetime) -> int:
        expired = and_(StoreItem.expires_at.is_not(None), StoreItem.expires_at <= now)
        async with self.db.transaction() as session:
            items = (
                await session.execute(
                    select(StoreItem.tenant, StoreItem.namespace, StoreItem.key).where(expired)
                )
            ).all()
            vectors: list[tuple[str, str]] = []
            for tenant, namespace, key in items:
                ids = (
                    await session.execute(
                        select(StoreItemVector.vector_id).where(
                            StoreItemVector.tenant == tenant,
                            StoreItemVector.namespace == namespace,
                            StoreItemVector.key == key,
                        )
                    )
                ).scalars()
                vectors.extend((tenant, vector_id) for vector_id in ids)
            if vectors:
                await session.execute(
                    delete(StoreItemVector).where(
                        StoreItemVector.vector_id.in_([v for _, v in vectors])
                    )
                )
            await session.execute(delete(StoreItem).where(expired))
        index = self.vectors.index("store")
        by_tenant: dict[str, list[str]] = {}
        for tenant, vector_id in vectors:
            by_tenant.setdefault(tenant, []).append(vector_id)
        for tenant, doomed in by_tenant.items():
            await asyncio.to_thread(index.delete, Scope(tenant), doomed)
        return len(items)

    async def _trace_steps(self, now: datetime) -> int:
        if self.policy.trace_ttl is None:
            return 0
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(TraceStep).where(TraceStep.created_at <= now - self.policy.trace_ttl)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _threads(self, now: datetime) -> int:
        if self.policy.thread_ttl is None:
            return 0
        cutoff = now - self.policy.thread_ttl
        async with self.db.session() as session:
            ids = list(
                (
                    await session.execute(
                        select(Thread.thread_id).where(
                            Thread.updated_at <= cutoff, Thread.status != "busy"
                        )
                    )
                ).scalars()
            )
        for thread_id in ids:
            await self.delete_thread(thread_id)
        return len(ids)

    def _files(self, now: datetime) -> int:
        if self.policy.file_ttl is None or self.files_dir is None or not self.files_dir.is_dir():
            return 0
        cutoff = (now - self.policy.file_ttl).timestamp()
        removed = 0
        for path in sorted(self.files_dir.rglob("*"), reverse=True):
            try:
                if path.is_symlink() or path.is_file():
                    if path.lstat().st_mtime <= cutoff:
                        path.unlink()
                        removed += 1
                elif path.is_dir() and path.lstat().st_mtime <= cutoff and not any(path.iterdir()):
                    os.rmdir(path)
            except OSError as exc:
                log.warning("retention_file_failed", path=str(path), error=str(exc))
        return removed
