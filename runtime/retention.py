"""Retention: every memory, document, chunk, thread, store item, cache entry and file has an
expiry, and this sweeper deletes what is past it, for real (rows, full-text entries,
vectors, checkpoints, files; SQLite deletes zero their pages with ``secure_delete``).

Expiry comes from the rows' own ``expires_at`` (memories, documents, chunks, ingestion jobs,
store items, provider cache) or from a configured age: threads idle longer than
``thread_ttl`` (deleted through the runner, checkpoints included), files in the files
directory not modified for ``file_ttl``, and per-step trace rows older than ``trace_ttl``.
A thread that is running is never swept.

Physically clean: deleting a vector by id only marks it in hnswlib (its bytes stay in the
segment files), FTS5 only marks deleted entries until its segments merge (SQLite < 3.42),
and the WAL keeps old page images until it is checkpointed. So a sweep that deleted
something ends like an erasure, once per sweep (not per item): every vector partition it
deleted from is rebuilt and ``VectorStore.purge_residue`` scrubs the Chroma directory;
the full-text indexes that lost rows are optimised; the SQLite WAL is checkpointed and
truncated. Partitions are marked for rebuild before their vectors go (durable markers), so
a crash between the delete and the rebuild is finished by the next ``open_local``.
With a Chroma server, whose collections other processes write, partitions are not rebuilt
(a rebuild could lose their concurrent writes) and the server's files are its operator's.
PostgreSQL keeps dead row versions until autovacuum reuses them; only an erasure runs
``VACUUM FULL`` (too heavy for a periodic sweep). The checkpoint database of swept threads
is not compacted here either (an erasure does that).
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
from sqlalchemy import and_, delete, or_, select, text

from memory.memories import Memories
from memory.types import Scope
from memory.vectors import VectorIndexError, VectorStore
from store import Database, sqlite_inline
from store.models import (
    Document,
    DocumentChunk,
    IngestionJob,
    Memory,
    ProviderCacheEntry,
    StoreItem,
    StoreItemVector,
    Thread,
    TraceStep,
)

log = structlog.get_logger(__name__)

_BATCH = 500
"""Ids per ``IN (...)`` (SQLite allows 32766 bound variables; stay far below)."""
_CHECKPOINT_BUSY_MS = 2_000
"""How long the WAL checkpoint waits for readers before leaving truncation to the next
sweep (it holds back new writers while it waits)."""


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
    rebuilt: int = 0
    """Vector partitions rebuilt because the sweep deleted vectors from them."""
    residue: dict[str, int] = field(default_factory=dict)
    """``VectorStore.purge_residue``'s counts (empty when nothing needed scrubbing)."""

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "deleted": self.deleted,
            "rebuilt": self.rebuilt,
            "residue": self.residue,
        }


@dataclass
class _Touched:
    """What a sweep deleted vectors from, so it can be cleaned once at the end."""

    partitions: set[tuple[str, Scope]] = field(default_factory=set)
    fulltext: set[str] = field(default_factory=set)


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

    @sqlite_inline.offloading  # bulk deletes: keep them off the event loop
    async def sweep(self, now: datetime | None = None) -> SweepReport:
        """Delete everything expired at ``now``; then, if anything went, clean the files."""
        moment = now or datetime.now(UTC)
        report = SweepReport()
        touched = _Touched()
        report.deleted["memories"] = await self._memories(moment, touched)
        report.deleted["documents"], report.deleted["chunks"] = await self._documents(
            moment, touched
        )
        report.deleted["store_items"] = await self._store_items(moment, touched)
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(ProviderCacheEntry).where(ProviderCacheEntry.expires_at <= moment)
            )
            report.deleted["cache_entries"] = int(result.rowcount or 0)  # type: ignore[attr-defined]
        report.deleted["trace_steps"] = await self._trace_steps(moment)
        report.deleted["threads"] = await self._threads(moment)
        report.deleted["files"] = await asyncio.to_thread(self._files, moment)
        if report.total - report.deleted["files"]:
            await self._clean(touched, report)
        log.info("retention_swept", rebuilt=report.rebuilt, **report.deleted)
        return report

    async def _clean(self, touched: _Touched, report: SweepReport) -> None:
        """Make what this sweep deleted unreadable on disk (see the module docstring)."""
        order = sorted(touched.partitions, key=lambda p: (p[0], p[1].tenant, p[1].user or ""))
        for namespace, scope in order:
            try:
                await asyncio.to_thread(self.vectors.index(namespace).rebuild, scope)
            except VectorIndexError as exc:  # still marked: the next open finishes it
                log.warning("retention_rebuild_failed", namespace=namespace, error=str(exc))
            else:
                report.rebuilt += 1
        if report.rebuilt:
            report.residue = await asyncio.to_thread(self.vectors.purge_residue)
        if not self.db.is_sqlite:
            return
        async with self.db.transaction() as session:
            for table in sorted(touched.fulltext):
                await session.execute(text(f"INSERT INTO {table}({table}) VALUES ('optimize')"))
        async with self.db.engine.connect() as connection:
            usual = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
            await connection.exec_driver_sql(f"PRAGMA busy_timeout={_CHECKPOINT_BUSY_MS}")
            try:
                busy = (await connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")).first()
            finally:
                await connection.exec_driver_sql(f"PRAGMA busy_timeout={int(usual)}")
        if busy is not None and busy[0]:
            log.warning("retention_wal_not_truncated", hint="readers held it; next sweep retries")

    async def _mark(self, touched: _Touched, namespace: str, scopes: set[Scope]) -> None:
        if not self.vectors.embedded:
            return  # other processes write a server's collections: a rebuild could lose them
        index = self.vectors.index(namespace)
        for scope in scopes:
            if (namespace, scope) not in touched.partitions:
                await asyncio.to_thread(index.schedule_rebuild, scope)
                touched.partitions.add((namespace, scope))

    async def _memories(self, now: datetime, touched: _Touched) -> int:
        expired = and_(Memory.expires_at.is_not(None), Memory.expires_at <= now)
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(Memory.tenant, Memory.user, Memory.memory_id).where(expired)
                )
            ).all()
        if not rows:
            return 0
        await self._mark(touched, "memories", {Scope(tenant, user) for tenant, user, _ in rows})
        touched.fulltext.add("memories_fts")
        ids = [memory_id for _, _, memory_id in rows]
        removed = 0
        for start in range(0, len(ids), _BATCH):
            removed += await self.memories.delete_where(
                and_(expired, Memory.memory_id.in_(ids[start : start + _BATCH]))
            )
        return removed

    async def _documents(self, now: datetime, touched: _Touched) -> tuple[int, int]:
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
        by_scope: dict[Scope, list[str]] = {}
        for tenant, owner, chunk_id in chunk_rows:
            by_scope.setdefault(Scope(tenant, owner), []).append(chunk_id)
        if chunk_rows:
            touched.fulltext.add("document_chunks_fts")
        await self._mark(touched, "chunks", set(by_scope))
        index = self.vectors.index("chunks")
        for scope, ids in by_scope.items():
            await asyncio.to_thread(index.delete, scope, ids)
        return len(doc_ids), len(chunk_rows)

    async def _store_items(self, now: datetime, touched: _Touched) -> int:
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
        by_tenant: dict[Scope, list[str]] = {}
        for tenant, vector_id in vectors:
            by_tenant.setdefault(Scope(tenant), []).append(vector_id)
        await self._mark(touched, "store", set(by_tenant))
        for scope, doomed in by_tenant.items():
            await asyncio.to_thread(index.delete, scope, doomed)
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
