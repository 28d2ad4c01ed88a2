"""Documents: one object that ingests (``DocumentIngestor``), runs the background worker
(``IngestionWorker``) and searches (``DocumentRetriever``) over one store, one vector
index namespace (``chunks``) and one embedder.

``open_documents`` builds it from explicit parts; the API and CLI pass their settings'
values (this package does not read settings).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from memory.document_types import QueryRewriter, Reranker
from memory.embeddings import Embedder, create_embedder
from memory.ingest import DocumentConfig, DocumentIngestor, IngestionWorker
from memory.retrieval import DocumentRetriever, RetrievalConfig
from memory.vectors import VectorStore, open_vector_store
from store import Database

CHUNK_NAMESPACE = "chunks"


@dataclass
class Documents:
    ingestor: DocumentIngestor
    retriever: DocumentRetriever
    worker: IngestionWorker

    @classmethod
    def build(
        cls,
        db: Database,
        vectors: VectorStore,
        embedder: Embedder,
        *,
        config: DocumentConfig | None = None,
        retrieval: RetrievalConfig | None = None,
        rewrite: QueryRewriter | None = None,
        rerank: Reranker | None = None,
        poll_seconds: float = 2.0,
    ) -> Documents:
        index = vectors.index(CHUNK_NAMESPACE)
        ingestor = DocumentIngestor(db, index, embedder, config)
        retriever = DocumentRetriever(
            db, index, embedder, config=retrieval, rewrite=rewrite, rerank=rerank
        )
        return cls(ingestor, retriever, IngestionWorker(ingestor, poll_seconds=poll_seconds))


@asynccontextmanager
async def open_documents(
    db: Database,
    *,
    chroma_path: Path,
    chroma_url: str | None = None,
    scope_key: bytes | None = None,
    cache_max_vectors: int = 250_000,
    embedder: Embedder | None = None,
    embedding_model: str = "local:all-MiniLM-L6-v2",
    models_dir: Path | None = None,
    config: DocumentConfig | None = None,
) -> AsyncIterator[Documents]:
    """Open the vector store (embedded Chroma is owned by this process until exit) and
    build ``Documents``; the worker is not started (call ``documents.worker.start()``).

    Raises:
        VectorIndexLockedError: embedded Chroma is open in another process.
        EmbeddingError: the embedding model cannot be configured.
    """
    if embedder is None:
        embedder = create_embedder(embedding_model, cache_dir=models_dir or chroma_path.parent)
    store = open_vector_store(
        path=chroma_path, url=chroma_url, scope_key=scope_key, cache_max_vectors=cache_max_vectors
    )
    documents = Documents.build(db, store, embedder, config=config)
    try:
        yield documents
    finally:
        await documents.worker.stop()
        store.close()


def document_config(*, max_bytes: int, hold_financial: bool) -> DocumentConfig:
    """The ingestion policy from the settings' values: special-category content is always
    held; financial identifiers too when ``hold_financial``."""
    from privacy import Sensitivity

    held = {Sensitivity.SPECIAL} | ({Sensitivity.FINANCIAL} if hold_financial else set())
    return DocumentConfig(max_bytes=max_bytes, hold_sensitivities=frozenset(held))
