"""Builds the memory and GDPR services (memories, legal bases, export, erasure, retention)
from settings and an open ``System``.

The embedded vector store is owned by one process (a file lock), so it is opened only when a
service needs it: the first recall, erase or sweep, not at every CLI start. A process that
already owns a ``VectorStore`` (the documents feature, say) passes it in to share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from memory.consent import ConsentService
from memory.documents import CHUNK_NAMESPACE, document_config
from memory.embeddings import Embedder, create_embedder
from memory.ingest import DocumentIngestor
from memory.memories import MEMORY_NAMESPACE, Memories, MemoryConfig
from memory.minimisation import MinimisationPolicy
from memory.store import STORE_NAMESPACE, RelayStore, StoreIndex
from memory.types import MemoryStoreError
from memory.vectors import VectorStore, open_vector_store
from privacy import Sensitivity
from runtime.erasure import Eraser
from runtime.retention import RetentionPolicy, RetentionSweeper
from runtime.settings import Settings

if TYPE_CHECKING:
    from runtime.system import System


def memory_config(settings: Settings) -> MemoryConfig:
    return MemoryConfig(
        ttl_days=settings.memory_ttl_days,
        merge_threshold=settings.memory_merge_threshold,
        hold_sensitivities=frozenset(Sensitivity(name) for name in settings.privacy_hold),
    )


def minimisation_policy(settings: Settings) -> MinimisationPolicy:
    return MinimisationPolicy.from_names(settings.privacy_minimise)


def retention_policy(settings: Settings) -> RetentionPolicy:
    def days(value: float | None) -> timedelta | None:
        return None if value is None else timedelta(days=value)

    return RetentionPolicy(
        thread_ttl=days(settings.thread_ttl_days),
        file_ttl=days(settings.file_ttl_days),
        trace_ttl=days(settings.trace_ttl_days),
    )


def build_embedder(settings: Settings) -> Embedder:
    """The configured embedder (keys passed explicitly; nothing reads the environment)."""
    openai = settings.openai_api_key
    google = settings.google_api_key
    return create_embedder(
        settings.embedding_model,
        cache_dir=settings.models_dir,
        openai_api_key=openai.get_secret_value() if openai else None,
        openai_base_url=settings.openai_base_url,
        google_api_key=google.get_secret_value() if google else None,
        google_base_url=settings.google_base_url,
        dimensions=settings.embedding_dimensions,
    )


def open_vectors(settings: Settings) -> VectorStore:
    """The configured vector store.

    Raises:
        VectorIndexLockedError: embedded Chroma is owned by another process.
    """
    key = settings.chroma_scope_key
    return open_vector_store(
        path=settings.chroma_dir,
        url=settings.chroma_url,
        scope_key=key.get_secret_value().encode() if key else None,
        cache_max_vectors=settings.vector_cache_max_vectors,
    )


@dataclass
class MemoryServices:
    """Memories, legal bases, erasure and retention over one system and vector store."""

    system: System
    vectors: VectorStore
    embedder: Embedder
    memories: Memories = field(init=False)
    documents: DocumentIngestor = field(init=False)
    consent: ConsentService = field(init=False)

    def __post_init__(self) -> None:
        settings = self.system.settings
        self.memories = Memories(
            self.system.db,
            self.vectors.index(MEMORY_NAMESPACE),
            self.embedder,
            memory_config(settings),
        )
        self.documents = DocumentIngestor(
            self.system.db,
            self.vectors.index(CHUNK_NAMESPACE),
            self.embedder,
            document_config(
                max_bytes=settings.document_max_bytes,
                hold_financial=settings.document_hold_financial,
            ),
        )
        self.consent = ConsentService(self.system.db, self.memories, self.documents)

    async def delete_thread(self, thread_id: str) -> None:
        from runtime.runs import Runner

        await Runner(self.system).delete_thread(thread_id)

    def eraser(self, extra_roots: tuple[Path, ...] = ()) -> Eraser:
        settings = self.system.settings
        files = settings.files_dir
        roots = [*extra_roots]
        if not files.is_relative_to(settings.data_dir):
            roots.append(files)
        if not settings.chroma_dir.is_relative_to(settings.data_dir):
            roots.append(settings.chroma_dir)
        return Eraser(
            db=self.system.db,
            memories=self.memories,
            vectors=self.vectors,
            delete_thread=self.delete_thread,
            checkpointer=self.system.checkpointer,
            checkpoint_path=(
                settings.checkpoint_path
                if settings.checkpoint_store_url.startswith("sqlite")
                else None
            ),
            data_dir=settings.data_dir,
            extra_roots=roots,
            busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        )

    def sweeper(self) -> RetentionSweeper:
        settings = self.system.settings
        return RetentionSweeper(
            db=self.system.db,
            memories=self.memories,
            vectors=self.vectors,
            delete_thread=self.delete_thread,
            files_dir=settings.files_dir,
            policy=retention_policy(settings),
        )


@asynccontextmanager
async def open_memory_services(
    system: System, *, vectors: VectorStore | None = None, embedder: Embedder | None = None
) -> AsyncIterator[MemoryServices]:
    """Memory services for ``system``; opens (and closes) the vector store unless given one."""
    owned = vectors is None
    # Opened on the loop's thread: the directory lock (filelock, thread-local by default)
    # must be released by the thread that took it.
    store = vectors or open_vectors(system.settings)
    try:
        services = MemoryServices(system, store, embedder or build_embedder(system.settings))
        try:
            yield services
        finally:
            await services.memories.drain()
    finally:
        if owned:
            store.close()


class LazyMemoryServices:
    """Memory services opened on first use and closed with ``aclose`` (the API server: a
    server that never touches memory never takes the vector store's lock).

    The process's one vector store and embedder are opened here too: other features in the
    same process (documents) must share them through ``vector_store()`` and ``embedder()``,
    because embedded Chroma admits one owner per directory.
    """

    def __init__(
        self,
        system: System,
        *,
        vectors: VectorStore | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.system = system
        self._given = vectors
        self._vectors: VectorStore | None = vectors
        self._embedder: Embedder | None = embedder
        self._services: MemoryServices | None = None
        self._lock = asyncio.Lock()

    async def vector_store(self) -> VectorStore:
        """The shared vector store, opened on first use (on the loop's thread, so that the
        directory lock is released by the thread that took it).

        Raises: VectorIndexLockedError, VectorIndexError.
        """
        async with self._lock:
            return self._open_vectors()

    def _open_vectors(self) -> VectorStore:
        if self._vectors is None:
            self._vectors = open_vectors(self.system.settings)
        return self._vectors

    def embedder(self) -> Embedder:
        """The shared embedder (its model loads on the first embedding).

        Raises: EmbeddingError: the configured model cannot be set up.
        """
        if self._embedder is None:
            self._embedder = build_embedder(self.system.settings)
        return self._embedder

    async def get(self) -> MemoryServices:
        """Raises: VectorIndexLockedError, EmbeddingError (cannot open them)."""
        async with self._lock:
            if self._services is None:
                self._services = MemoryServices(self.system, self._open_vectors(), self.embedder())
            return self._services

    async def aclose(self) -> None:
        async with self._lock:
            services, self._services = self._services, None
            vectors, self._vectors = self._vectors, None
        if services is not None:
            await services.memories.drain()
        if vectors is not None and self._given is None:
            vectors.close()


class MemoryBinding:
    """Late binding for the memory tools: the tool registry is built before the ``System``
    that the memory services need, so the tools resolve the service through this."""

    def __init__(self) -> None:
        self.lazy: LazyMemoryServices | None = None

    def bind(self, system: System, *, vectors: VectorStore | None = None) -> LazyMemoryServices:
        self.lazy = LazyMemoryServices(system, vectors=vectors)
        return self.lazy

    async def memories(self) -> Memories:
        """Raises: MemoryStoreError when not bound or the services cannot open."""
        if self.lazy is None:
            raise MemoryStoreError("long-term memory is not available in this process")
        return (await self.lazy.get()).memories


def tenant_store(services: MemoryServices, tenant: str) -> RelayStore:
    """The LangGraph store of ``tenant``: SQL items (``runtime.store_items``) with the
    semantic index beside them; give it to graphs as ``store``."""
    from runtime import store_items

    index = StoreIndex(
        services.system.db, services.vectors.index(STORE_NAMESPACE), services.embedder
    )
    return RelayStore(db=services.system.db, tenant=tenant, backend=store_items, index=index)


async def has_vectors(system: System, tenant: str, namespace: list[str], key: str) -> bool:
    """Whether a store item has vectors (so a change must update the index)."""
    from sqlalchemy import select

    from store.models import StoreItemVector

    async with system.db.session() as session:
        found = await session.execute(
            select(StoreItemVector.vector_id)
            .where(
                StoreItemVector.tenant == tenant,
                StoreItemVector.namespace == ".".join(namespace),
                StoreItemVector.key == key,
            )
            .limit(1)
        )
        return found.first() is not None
