"""Held documents and legal bases (memory/consent.py over memory/ingest.py): recording a
basis releases the subject's held documents through the ingestion jobs, withdrawal deletes
what was admitted under it, rejection deletes what is held. Real relational store (SQLite,
and PostgreSQL through the ``backend`` fixture) and real Chroma collections."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from identity import Principal
from memory.consent import ConsentService
from memory.documents import Documents
from memory.memories import MEMORY_NAMESPACE, Memories
from memory.vectors import VectorStore
from store import Database
from tests.memory.documents_helpers import (
    HashingEmbedder,
    fulltext_matches,
    open_test_documents,
    row_counts,
    vector_count,
)

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)

ALICE = Principal.with_roles("a", "alice", ["user"])
UNION = b"Meeting notes: Alice is a member of the trade union and asked about the strike."
HEALTH = b"Visit record: the patient was diagnosed with diabetes and receives insulin."


@dataclass
class Env:
    documents: Documents
    db: Database
    store: VectorStore
    consent: ConsentService


@asynccontextmanager
async def open_env(directory: Path) -> AsyncIterator[Env]:
    embedder = HashingEmbedder()
    async with open_test_documents(directory, embedder) as (documents, db, store):
        memories = Memories(db, store.index(MEMORY_NAMESPACE), embedder)
        try:
            yield Env(documents, db, store, ConsentService(db, memories, documents.ingestor))
        finally:
            await memories.drain()


async def ingest(env: Env, content: bytes, source: str, owner: str = "alice") -> str:
    submission = await env.documents.ingestor.submit(
        tenant="a", owner=owner, data=content, source=source
    )
    if submission.job_id is not None:
        await env.documents.ingestor.run_job(submission.job_id)
    return submission.document_id


async def status(env: Env, document_id: str) -> str:
    return (await env.documents.ingestor.get(ALICE, document_id)).status


async def grant_and_index(
    env: Env,
    subject: str = "alice",
    purpose: str = "*",
    categories: tuple[str, ...] = ("special", "financial"),
) -> list[str]:
    result = await env.consent.grant(
        tenant="a", subject=subject, recorded_by=subject, purpose=purpose, categories=categories
    )
    for job_id in result.document_jobs:
        assert (await env.documents.ingestor.run_job(job_id)).status == "succeeded"
    return list(result.document_jobs)


async def test_a_recorded_basis_releases_held_documents_through_the_ingestion_job(
    tmp_path: Path,
) -> None:
    async with open_env(tmp_path) as env:
        document_id = await ingest(env, UNION, "notes.md")
        assert await status(env, document_id) == "awaiting_basis"
        held = await env.consent.list_held(tenant="a", subject="alice")
        assert [d.id for d in held.documents] == [document_id] and held.memories == []
        assert held.to_dict()["held_documents"][0]["sensitivity"] == "special"
        assert await env.documents.retriever.search(ALICE, "trade union strike") == []

        # Someone else's consent, a narrower purpose or another category release nothing.
        assert await grant_and_index(env, subject="bob") == []
        assert await grant_and_index(env, purpose="personalisation") == []
        assert await grant_and_index(env, categories=("financial",)) == []
        assert await status(env, document_id) == "awaiting_basis"

        result = await env.consent.grant(tenant="a", subject="alice", recorded_by="alice")
        assert (result.released, result.released_documents) == (0, 1)
        assert result.to_dict()["released_documents"] == 1
        job = await env.documents.ingestor.run_job(result.document_jobs[0])
        assert job.status == "succeeded"

        view = await env.documents.ingestor.get(ALICE, document_id)
        assert view.status == "ready" and view.chunk_count == 1
        hits = await env.documents.retriever.search(ALICE, "trade union strike")
        assert hits and hits[0].document_id == document_id
        assert vector_count(env.store, "a", "alice") == 1
        assert (await env.consent.list_held(tenant="a", subject="alice")).documents == []

        # The same content again is a no-op; new held content is indexed under the basis.
        again = await env.documents.ingestor.submit(
            tenant="a", owner="alice", data=UNION, source="notes.md"
        )
        assert again.unchanged and again.job_id is None and again.status == "ready"
        later = await ingest(env, HEALTH, "visit.txt")
        assert await status(env, later) == "ready"
        assert await env.documents.retriever.search(ALICE, "insulin")


async def test_withdrawal_deletes_the_documents_admitted_under_the_basis(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        released = await ingest(env, UNION, "notes.md")
        plain = await ingest(env, b"The ferry to Samso leaves at nine.", "ferry.txt")
        assert len(await grant_and_index(env)) == 1
        admitted = await ingest(env, HEALTH, "visit.txt")  # indexed under the basis at once
        assert await status(env, admitted) == "ready"
        [basis] = await env.consent.list_bases(tenant="a", subject="alice")

        withdrawn = await env.consent.withdraw(
            tenant="a", subject="alice", basis_id=basis.id, by="alice"
        )

        assert (withdrawn.deleted, withdrawn.deleted_documents) == (0, 2)
        remaining = await env.documents.ingestor.list_documents(ALICE)
        assert [d.id for d in remaining] == [plain]
        counts = await row_counts(env.db)
        assert counts["documents"] == 1 and counts["document_chunks"] == counts["fts"] == 1
        assert counts["ingestion_jobs"] == 1
        assert vector_count(env.store, "a", "alice") == 1
        for word in ("union", "insulin", "diabetes"):
            assert await fulltext_matches(env.db, word) == 0
            hits = await env.documents.retriever.search(ALICE, word)
            assert {hit.document_id for hit in hits} <= {plain}  # the vector neighbour only
        assert released not in {d.id for d in remaining}
        # With the basis gone, the same content is held again.
        again = await ingest(env, UNION, "notes.md")
        assert await status(env, again) == "awaiting_basis"


async def test_a_withdrawn_basis_deletes_a_released_document_still_queued(
    tmp_path: Path,
) -> None:
    async with open_env(tmp_path) as env:
        document_id = await ingest(env, UNION, "notes.md")
        result = await env.consent.grant(tenant="a", subject="alice", recorded_by="alice")
        assert result.released_documents == 1  # queued, not run yet

        withdrawn = await env.consent.withdraw(
            tenant="a", subject="alice", basis_id=result.basis.id, by="alice"
        )

        assert withdrawn.deleted_documents == 1
        assert await env.documents.ingestor.list_documents(ALICE) == []
        assert (await row_counts(env.db))["ingestion_jobs"] == 0
        assert await env.documents.ingestor.run_next() is None
        assert vector_count(env.store, "a", "alice") == 0
        assert document_id


async def test_rejecting_deletes_held_documents_and_keeps_the_rest(tmp_path: Path) -> None:
    async with open_env(tmp_path) as env:
        await ingest(env, UNION, "notes.md")
        await ingest(env, HEALTH, "visit.txt")
        await ingest(env, UNION, "bobs.md", owner="bob")
        plain = await ingest(env, b"The ferry to Samso leaves at nine.", "ferry.txt")

        rejected = await env.consent.reject_held(tenant="a", subject="alice")

        assert (rejected.deleted, rejected.deleted_documents) == (0, 2)
        assert rejected.to_dict() == {"deleted": 0, "deleted_documents": 2}
        assert [d.id for d in await env.documents.ingestor.list_documents(ALICE)] == [plain]
        bob = Principal.with_roles("a", "bob", ["user"])
        assert [d.status for d in await env.documents.ingestor.list_documents(bob)] == [
            "awaiting_basis"
        ]
        counts = await row_counts(env.db)
        assert counts["documents"] == 2 and counts["ingestion_jobs"] == 2
