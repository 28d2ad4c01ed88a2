"""Shared parts of the memory tests: a deterministic embedder with the real one's interface
and a ``Memories`` over the test's relational store (a SQLite file, or the PostgreSQL
database the ``backend`` fixture chose) and a real Chroma directory."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np

from memory.consent import ConsentService
from memory.embeddings import Embedder
from memory.memories import MEMORY_NAMESPACE, Memories, MemoryConfig
from memory.vectors import VectorStore
from runtime.settings import Settings
from store import Database, migrate


def store_url(directory: Path) -> str:
    """The relational store a test uses, picked as the product picks it: Settings'
    ``store_url`` (``RELAYGRAPH_DATABASE_URL``, set by the ``backend`` fixture, or a SQLite
    file in ``directory``)."""
    return Settings(data_dir=directory).store_url


class WordHashEmbedder(Embedder):
    """Bag of words hashed into 384 dimensions: deterministic and instant; texts sharing
    most words are near each other (paraphrase needs the real model)."""

    model_id = "test:word-hash"

    def __init__(self) -> None:
        self.calls = 0

    @property
    def dimension(self) -> int:
        return 384

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        rows = np.zeros((len(texts), 384), dtype=np.float32)
        for row, item in enumerate(texts):
            for word in re.findall(r"\w+", item.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                rows[row, int.from_bytes(digest[:2], "big") % 384] += 1.0
            rows[row, 383] += 0.01
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


class Env:
    def __init__(self, db: Database, vectors: VectorStore, memories: Memories) -> None:
        self.db = db
        self.vectors = vectors
        self.memories = memories
        self.consent = ConsentService(db, memories)


@asynccontextmanager
async def open_memories(
    directory: Path,
    embedder: Embedder | None = None,
    config: MemoryConfig | None = None,
    *,
    vectors: Callable[[Path], VectorStore] | None = None,
) -> AsyncIterator[Env]:
    """``vectors``: how to open the vector store (the ``open_vectors`` fixture: embedded
    or a Chroma server); default embedded in ``directory/chroma``."""
    url = store_url(directory)
    migrate(url)
    db = Database(url)
    store = vectors(directory) if vectors else VectorStore.open_local(directory / "chroma")
    memories = Memories(db, store.index(MEMORY_NAMESPACE), embedder or WordHashEmbedder(), config)
    try:
        yield Env(db, store, memories)
    finally:
        await memories.drain()
        store.close()
        await db.dispose()
