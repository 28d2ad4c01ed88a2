"""Shared parts of the document tests: fixture files made on the fly (PDF with pypdf, DOCX
with python-docx), a deterministic embedder with the real one's interface, and a
``Documents`` over the test's relational store (a SQLite file, or the PostgreSQL database
the ``backend`` fixture chose) and a real Chroma directory."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text

from memory.documents import CHUNK_NAMESPACE, Documents
from memory.embeddings import Embedder
from memory.ingest import DocumentConfig
from memory.types import Scope
from memory.vectors import VectorStore
from store import Database, migrate
from store.models import Document, DocumentChunk, DocumentGrant, IngestionJob
from tests.memory.memory_helpers import store_url


class HashingEmbedder(Embedder):
    """Bag of words hashed into 384 dimensions: deterministic, instant, and similar for
    texts sharing words (no paraphrase sense: tests of that use the real model)."""

    model_id = "test:hashing"

    def __init__(self, *, fail_times: int = 0) -> None:
        self.fail_times = fail_times
        self.calls = 0

    @property
    def dimension(self) -> int:
        return 384

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        from memory.types import EmbeddingError

        self.calls += 1
        if self.fail_times:
            self.fail_times -= 1
            raise EmbeddingError("the embedding service is unavailable (scripted)")
        rows = np.zeros((len(texts), 384), dtype=np.float32)
        for row, item in enumerate(texts):
            for word in re.findall(r"\w+", item.lower()):
                digest = hashlib.sha256(word.encode()).digest()
                rows[row, int.from_bytes(digest[:2], "big") % 384] += 1.0
            rows[row, 383] += 0.01  # never a zero vector
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_pdf(pages: Sequence[str]) -> bytes:
    """A real PDF with one text line per page, written with pypdf."""
    from pypdf import PdfWriter
    from pypdf.generic import (
        DecodedStreamObject,
        DictionaryObject,
        NameObject,
    )

    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    font_ref = writer._add_object(font)
    for content in pages:
        page = writer.add_blank_page(width=612, height=792)
        escaped = content.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 11 Tf 40 740 Td ({escaped}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font_ref})}
        )
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_docx(paragraphs: Sequence[str], table: Sequence[Sequence[str]] = ()) -> bytes:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@asynccontextmanager
async def open_test_documents(
    directory: Path, embedder: Embedder, config: DocumentConfig | None = None
) -> AsyncIterator[tuple[Documents, Database, VectorStore]]:
    url = store_url(directory)
    await asyncio.to_thread(migrate, url)
    db = Database(url)
    store = VectorStore.open_local(directory / "chroma")
    documents = Documents.build(
        db,
        store,
        embedder,
        config=config or DocumentConfig(retry_base_seconds=0.01),
        poll_seconds=0.05,
    )
    try:
        yield documents, db, store
    finally:
        await documents.worker.stop()
        store.close()
        await db.dispose()


async def row_counts(db: Database) -> dict[str, int]:
    counts = {}
    async with db.session() as session:
        for model in (Document, DocumentChunk, DocumentGrant, IngestionJob):
            counts[model.__tablename__] = (
                await session.execute(select(func.count()).select_from(model))
            ).scalar_one()
        # Entries of the full-text index: SQLite's FTS5 table, PostgreSQL's tsvector column.
        fts = (
            "select count(*) from document_chunks_fts"
            if db.is_sqlite
            else "select count(*) from document_chunks where text_tsv is not null"
        )
        counts["fts"] = (await session.execute(text(fts))).scalar_one()
    return counts


async def fulltext_matches(db: Database, word: str) -> int:
    """Chunks the full-text index finds for ``word`` (FTS5 MATCH, or a tsquery)."""
    statement = (
        "select count(*) from document_chunks_fts where document_chunks_fts match :word"
        if db.is_sqlite
        else "select count(*) from document_chunks where text_tsv @@ to_tsquery('simple', :word)"
    )
    async with db.session() as session:
        return int((await session.execute(text(statement), {"word": word})).scalar_one())


async def chunk_ids(db: Database, document_id: str) -> list[str]:
    async with db.session() as session:
        return list(
            (
                await session.execute(
                    select(DocumentChunk.chunk_id)
                    .where(DocumentChunk.document_id == document_id)
                    .order_by(DocumentChunk.seq)
                )
            ).scalars()
        )


def vector_count(store: VectorStore, tenant: str, user: str) -> int:
    return store.index(CHUNK_NAMESPACE).count(Scope(tenant, user))


_warm_cache: list[Path] = []


def warm_model_cache(factory: object, target: Path) -> None:
    """Copy a built MiniLM ONNX graph into ``target`` (a data dir's ``models``), building
    it once per test session, so servers and CLI runs in tests skip the build."""
    import shutil

    import pytest

    from memory.embeddings import LocalMiniLMEmbedder

    if not _warm_cache:
        assert isinstance(factory, pytest.TempPathFactory)
        directory = factory.mktemp("minilm")
        LocalMiniLMEmbedder(directory).embed(["warm up"])
        _warm_cache.append(directory)
    shutil.copytree(_warm_cache[0], target, dirs_exist_ok=True)
