"""Document ingestion (memory/ingest.py, extract.py, chunking.py) on a real relational store
(SQLite, and PostgreSQL through the ``backend`` fixture) and real Chroma collections, with a
deterministic embedder (tests of meaning use the real one: test_documents_retrieval.py)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from identity import Principal
from memory.chunking import chunk_text, count_tokens
from memory.document_types import (
    DocumentNotFoundError,
    DocumentPermissionError,
    DocumentRejectedError,
    ProgressEvent,
)
from memory.documents import Documents
from memory.ingest import DocumentConfig, utcnow
from privacy import Sensitivity
from store.models import Document, IngestionJob
from tests.memory.documents_helpers import (
    HashingEmbedder,
    chunk_ids,
    fulltext_matches,
    make_docx,
    make_pdf,
    open_test_documents,
    row_counts,
    vector_count,
)

ALICE = Principal.with_roles("a", "alice", ["user"])
BOB = Principal.with_roles("a", "bob", ["user"])
RITA = Principal.with_roles("a", "rita", ["reviewer"])
ADA = Principal.with_roles("a", "ada", ["admin"])
ALICE_IN_B = Principal.with_roles("b", "alice", ["user"])

FORMATS = {
    "notes.txt": (
        b"Shipping policy\n\nParcels leave the warehouse in Aarhus every Tuesday.\n",
        "text/plain",
        "warehouse",
    ),
    "guide.md": (
        b"# Setup\n\nRun the **flux capacitor** calibration before first use.\n\n- step one\n",
        "text/markdown",
        "capacitor",
    ),
    "page.html": (
        b"<!DOCTYPE html><html><head><title>FAQ</title><style>p{color:red}</style>"
        b"<script>var secret='scriptword';</script></head><body><h1>FAQ</h1>"
        b"<p>Our <b>lighthouse</b> opens at dawn.</p></body></html>",
        "text/html",
        "lighthouse",
    ),
    "report.pdf": (
        make_pdf(["Cover page of the annual report.", "Revenue from the gondola line rose."]),
        "application/pdf",
        "gondola",
    ),
    "memo.docx": (
        make_docx(["Memo to staff.", "The cafeteria serves risotto on Fridays."], [["a", "b"]]),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "risotto",
    ),
}


on_each_backend = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)


@pytest.fixture
async def env(tmp_path: Path, backend: str):  # type: ignore[no-untyped-def]
    async with open_test_documents(tmp_path, HashingEmbedder()) as opened:
        yield opened


async def ingest(
    documents: Documents,
    data: bytes,
    source: str,
    *,
    tenant: str = "a",
    owner: str = "alice",
    **kwargs: Any,
) -> str:
    submission = await documents.ingestor.submit(
        tenant=tenant, owner=owner, data=data, source=source, **kwargs
    )
    if submission.job_id is not None:
        await documents.ingestor.run_job(submission.job_id)
    return submission.document_id


@pytest.mark.parametrize("source", list(FORMATS))
async def test_each_format_is_extracted_chunked_embedded_and_indexed(env, source: str) -> None:
    documents, _db, store = env
    data, mime, keyword = FORMATS[source]
    document_id = await ingest(documents, data, source)

    view = await documents.ingestor.get(ALICE, document_id)
    assert view.status == "ready"
    assert view.mime_type == mime
    assert view.chunk_count >= 1
    assert view.job is not None and view.job.status == "succeeded"
    assert vector_count(store, "a", "alice") == view.chunk_count
    hits = await documents.retriever.search(ALICE, keyword, k=3)
    assert hits and hits[0].document_id == document_id
    assert keyword in hits[0].text.lower()
    assert hits[0].trust == "untrusted"
    if source == "report.pdf":
        assert view.page_count == 2
        assert hits[0].page == 2
    if source == "page.html":  # scripts and styles are not text
        hits = await documents.retriever.search(ALICE, "scriptword color")
        assert all(hit.fulltext_rank is None for hit in hits)
        assert all("scriptword" not in hit.text and "color" not in hit.text for hit in hits)


async def test_the_job_records_progress_events_and_calls_the_listener(env) -> None:
    documents, _db, _store = env
    seen: list[ProgressEvent] = []
    submission = await documents.ingestor.submit(
        tenant="a", owner="alice", data=FORMATS["notes.txt"][0], source="notes.txt"
    )
    assert submission.job_id is not None
    view = await documents.ingestor.run_job(submission.job_id, seen.append)

    stages = [event["stage"] for event in view.events]
    assert stages[0] == "queued" and stages[-1] == "done"
    assert {"extracting", "scanning", "embedding", "indexing"} <= set(stages)
    assert [event.stage for event in seen][-1] == "done"
    progress = [event.progress for event in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0


async def test_reingesting_the_same_content_is_a_no_op(env) -> None:
    documents, db, store = env
    data = FORMATS["report.pdf"][0]
    document_id = await ingest(documents, data, "report.pdf")
    before = await chunk_ids(db, document_id)

    again = await documents.ingestor.submit(
        tenant="a", owner="alice", data=data, source="report.pdf"
    )

    assert again.unchanged and again.job_id is None and again.document_id == document_id
    assert await chunk_ids(db, document_id) == before
    assert (await row_counts(db))["ingestion_jobs"] == 1
    assert vector_count(store, "a", "alice") == len(before)
    assert (await documents.ingestor.get(ALICE, document_id)).version == 1


async def test_changed_content_replaces_the_old_chunks_and_vectors(env) -> None:
    documents, db, store = env
    first = await ingest(documents, b"The old pricing used copper tiers.", "pricing.txt")
    old_ids = await chunk_ids(db, first)

    second = await ingest(documents, b"The new pricing uses platinum tiers.", "pricing.txt")

    assert second == first  # same source: same document, so citations stay valid
    new_ids = await chunk_ids(db, first)
    assert new_ids and not set(new_ids) & set(old_ids)
    assert vector_count(store, "a", "alice") == len(new_ids)
    stale = await documents.retriever.search(ALICE, "copper")
    assert all("copper" not in hit.text and hit.fulltext_rank is None for hit in stale)
    hits = await documents.retriever.search(ALICE, "platinum")
    assert [hit.chunk_id for hit in hits] == new_ids
    view = await documents.ingestor.get(ALICE, first)
    assert view.version == 2 and view.status == "ready"
    counts = await row_counts(db)
    assert counts["document_chunks"] == counts["fts"] == len(new_ids)


async def test_a_newer_upload_supersedes_a_queued_one(env) -> None:
    documents, _db, _store = env
    one = await documents.ingestor.submit(tenant="a", owner="alice", data=b"alpha", source="x.txt")
    two = await documents.ingestor.submit(tenant="a", owner="alice", data=b"beta", source="x.txt")
    assert one.job_id and two.job_id
    assert (await documents.ingestor.job(one.job_id)).status == "superseded"
    await documents.ingestor.run_job(two.job_id)
    hits = await documents.retriever.search(ALICE, "alpha beta")
    assert [hit.text for hit in hits] == ["beta"]


BAD_INPUTS = {
    "empty": (b"", "empty.txt", "empty_file"),
    "whitespace": (b"  \n\t ", "blank.txt", "empty_file"),
    "image": (
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64,
        "photo.png",
        "unsupported_type",
    ),
    "binary": (bytes(range(256)) * 3, "blob.bin", "unsupported_type"),
    "random bytes": (bytes((i * 167 + 13) % 256 for i in range(900)), "x.dat", "unsupported_type"),
    "latin1": ("Smørrebrød på bordet".encode("latin-1"), "menu.txt", "not_utf8"),
    "corrupt pdf": (b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage", "x.pdf", "corrupt_pdf"),
    "text named pdf": (b"just some text", "report.pdf", "type_mismatch"),
    "zip named docx": (b"PK\x03\x04" + b"\x00" * 100, "memo.docx", "unsupported_type"),
    "too large": (b"word " * 300, "big.txt", "too_large"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
@on_each_backend
async def test_bad_input_is_refused_clearly_and_writes_nothing(tmp_path: Path, case: str) -> None:
    data, source, code = BAD_INPUTS[case]
    config = DocumentConfig(max_bytes=1000)
    async with open_test_documents(tmp_path, HashingEmbedder(), config) as (documents, db, store):
        with pytest.raises(DocumentRejectedError) as raised:
            await documents.ingestor.submit(tenant="a", owner="alice", data=data, source=source)

        assert raised.value.code == code
        assert source in str(raised.value)
        assert raised.value.status in (413, 415, 422)
        assert set((await row_counts(db)).values()) == {0}
        assert vector_count(store, "a", "alice") == 0


async def test_a_pdf_without_text_fails_its_job_and_leaves_no_chunks_or_vectors(env) -> None:
    documents, db, store = env
    submission = await documents.ingestor.submit(
        tenant="a", owner="alice", data=make_pdf([""]), source="scan.pdf"
    )
    assert submission.job_id
    view = await documents.ingestor.run_job(submission.job_id)

    assert view.status == "failed" and view.error_code == "no_text"
    assert view.attempts == 1  # bad input is never retried
    doc = await documents.ingestor.get(ALICE, submission.document_id)
    assert doc.status == "failed" and doc.error_code == "no_text"
    counts = await row_counts(db)
    assert counts["document_chunks"] == counts["fts"] == 0
    assert vector_count(store, "a", "alice") == 0


@on_each_backend
async def test_transient_failures_are_retried(tmp_path: Path) -> None:
    embedder = HashingEmbedder(fail_times=2)
    async with open_test_documents(tmp_path, embedder) as (documents, _db, _store):
        submission = await documents.ingestor.submit(
            tenant="a", owner="alice", data=b"Retry until the orchard is indexed.", source="r.txt"
        )
        assert submission.job_id
        view = await documents.ingestor.run_job(submission.job_id)

        assert view.status == "succeeded" and view.attempts == 3
        assert [e["stage"] for e in view.events].count("retry") == 2
        assert await documents.retriever.search(ALICE, "orchard")


@on_each_backend
async def test_exhausted_retries_dead_letter_the_job_with_nothing_indexed(tmp_path: Path) -> None:
    embedder = HashingEmbedder(fail_times=99)
    async with open_test_documents(tmp_path, embedder) as (documents, db, store):
        submission = await documents.ingestor.submit(
            tenant="a", owner="alice", data=b"The meadow report.", source="m.txt"
        )
        assert submission.job_id
        view = await documents.ingestor.run_job(submission.job_id)

        assert view.status == "dead" and view.attempts == 3
        assert view.error_code == "embedding_error"
        doc = await documents.ingestor.get(ALICE, submission.document_id)
        assert doc.status == "failed"
        counts = await row_counts(db)
        assert counts["document_chunks"] == counts["fts"] == 0
        assert vector_count(store, "a", "alice") == 0

        embedder.fail_times = 0  # the outage is over: an operator requeues the dead job
        await documents.ingestor.retry_job(submission.job_id)
        view = await documents.ingestor.run_job(submission.job_id)
        assert view.status == "succeeded"
        assert await documents.retriever.search(ALICE, "meadow")


async def test_failure_after_vectors_were_added_removes_them(env) -> None:
    documents, db, store = env
    submission = await documents.ingestor.submit(
        tenant="a", owner="alice", data=b"Vectors of the quarry.", source="q.txt"
    )
    assert submission.job_id
    original = documents.ingestor._swap_chunks
    calls = 0

    async def failing_swap(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full (scripted)")
        return await original(*args, **kwargs)

    documents.ingestor._swap_chunks = failing_swap  # type: ignore[method-assign]
    await documents.ingestor.claim(submission.job_id)
    await documents.ingestor._run(submission.job_id, None)

    assert vector_count(store, "a", "alice") == 0  # the attempt's vectors were removed
    assert (await row_counts(db))["document_chunks"] == 0
    view = await documents.ingestor.run_job(submission.job_id)
    assert view.status == "succeeded"
    assert vector_count(store, "a", "alice") == 1


async def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(env) -> None:
    documents, db, _store = env
    submission = await documents.ingestor.submit(
        tenant="a", owner="alice", data=b"Lease of the harbour.", source="h.txt"
    )
    assert await documents.ingestor.claim() == submission.job_id  # ...and the worker dies
    assert await documents.ingestor.claim() is None  # leased
    async with db.transaction() as session:
        await session.execute(
            update(IngestionJob).values(lease_until=utcnow() - timedelta(seconds=1))
        )

    view = await documents.ingestor.run_next()

    assert view is not None and view.status == "succeeded" and view.attempts == 2


async def test_the_background_worker_ingests_what_is_submitted(env) -> None:
    documents, _db, _store = env
    documents.worker.start()
    submission = await documents.ingestor.submit(
        tenant="a", owner="alice", data=b"The worker indexes the glacier survey.", source="g.txt"
    )
    async with asyncio.timeout(30):
        while (await documents.ingestor.get(ALICE, submission.document_id)).status != "ready":
            await asyncio.sleep(0.05)
    assert await documents.retriever.search(ALICE, "glacier")


@pytest.mark.parametrize(
    ("content", "level"),
    [
        (b"The patient was diagnosed with diabetes and receives insulin.", "special"),
        (b"Please pay the invoice to IBAN DE89 3704 0044 0532 0130 00.", "financial"),
    ],
)
async def test_special_and_financial_content_awaits_a_legal_basis(
    env, content: bytes, level: str
) -> None:
    documents, db, store = env
    document_id = await ingest(documents, content, "held.txt")

    view = await documents.ingestor.get(ALICE, document_id)
    assert view.status == "awaiting_basis" and view.sensitivity == level
    assert view.job is not None and view.job.status == "held"
    assert view.chunk_count == 0
    counts = await row_counts(db)
    assert counts["document_chunks"] == counts["fts"] == 0
    assert vector_count(store, "a", "alice") == 0
    for word in ("diabetes", "invoice", "patient", "IBAN"):
        assert await documents.retriever.search(ALICE, word) == []
    async with db.session() as session:  # the bytes wait on the job for the basis flow
        job = (await session.execute(select(IngestionJob))).scalar_one()
    assert job.payload == content
    assert view.findings and all(isinstance(n, int) for n in view.findings.values())


async def test_held_content_is_indexed_once_released_on_a_legal_basis(env) -> None:
    documents, _db, store = env
    content = b"The patient was diagnosed with diabetes and receives insulin."
    document_id = await ingest(documents, content, "held.txt")
    with pytest.raises(DocumentNotFoundError):
        await documents.ingestor.release_held("no-such-document", legal_basis_id="b1")

    job_id = await documents.ingestor.release_held(document_id, legal_basis_id="consent-17")
    view = await documents.ingestor.run_job(job_id)

    assert view.status == "succeeded"
    doc = await documents.ingestor.get(ALICE, document_id)
    assert doc.status == "ready" and doc.sensitivity == "special"
    hits = await documents.retriever.search(ALICE, "insulin")
    assert hits and hits[0].sensitivity == "special"
    assert vector_count(store, "a", "alice") == 1


@on_each_backend
async def test_which_levels_are_held_is_configurable(tmp_path: Path) -> None:
    config = DocumentConfig(hold_sensitivities=frozenset({Sensitivity.SPECIAL}))
    async with open_test_documents(tmp_path, HashingEmbedder(), config) as (documents, _, _):
        content = b"Please pay the invoice to IBAN DE89 3704 0044 0532 0130 00."
        document_id = await ingest(documents, content, "pay.txt")
        assert (await documents.ingestor.get(ALICE, document_id)).status == "ready"
        hits = await documents.retriever.search(ALICE, "invoice")
        assert hits and hits[0].sensitivity == "financial"


async def test_held_content_replacing_indexed_content_removes_the_old_chunks(env) -> None:
    documents, _db, store = env
    document_id = await ingest(documents, b"Visit notes: the clinic is on Elm street.", "v.txt")
    assert await documents.retriever.search(ALICE, "clinic")

    await ingest(documents, b"The patient was diagnosed with diabetes.", "v.txt")

    assert (await documents.ingestor.get(ALICE, document_id)).status == "awaiting_basis"
    assert await documents.retriever.search(ALICE, "clinic") == []
    assert vector_count(store, "a", "alice") == 0


async def test_acl_isolates_users_and_tenants_and_honours_grants(env) -> None:
    documents, _db, _store = env
    private = await ingest(documents, b"Alice's private walrus plan.", "private.txt")
    shared = await ingest(
        documents, b"Walrus budget shared with Bob.", "shared.txt", shared_with_users=["bob"]
    )
    reviewers = await ingest(
        documents, b"Walrus review checklist.", "review.txt", shared_with_roles=["reviewer"]
    )
    elsewhere = await ingest(documents, b"Walrus in tenant b.", "b.txt", tenant="b")

    async def visible(principal: Principal) -> set[str]:
        return {
            hit.document_id for hit in await documents.retriever.search(principal, "walrus", k=10)
        }

    assert await visible(ALICE) == {private, shared, reviewers}
    assert await visible(BOB) == {shared}
    assert await visible(RITA) == {reviewers}
    assert await visible(ALICE_IN_B) == {elsewhere}
    assert await visible(Principal.with_roles("c", "alice", ["admin"])) == set()
    # Another user's document is invisible even by id, and not deletable by them.
    with pytest.raises(DocumentNotFoundError):
        await documents.ingestor.get(BOB, private)
    with pytest.raises(DocumentNotFoundError):
        await documents.ingestor.delete(ALICE_IN_B, private)
    with pytest.raises(DocumentNotFoundError):
        await documents.ingestor.delete(RITA, private)
    assert (await documents.ingestor.get(ADA, private)).owner == "alice"  # admins read the tenant
    assert (await documents.ingestor.get(ALICE, private)).shared_with_users == []
    assert (await documents.ingestor.get(ALICE, shared)).shared_with_users == ["bob"]


async def test_search_needs_the_documents_read_scope(env) -> None:
    documents, _db, _store = env
    with pytest.raises(DocumentPermissionError):
        await documents.retriever.search(Principal("a", "alice"), "anything")


async def test_delete_removes_rows_full_text_entries_and_vectors(env) -> None:
    documents, db, store = env
    document_id = await ingest(documents, FORMATS["report.pdf"][0], "report.pdf")
    other = await ingest(documents, b"Keep this saffron note.", "keep.txt")

    await documents.ingestor.delete(ALICE, document_id)

    with pytest.raises(DocumentNotFoundError):
        await documents.ingestor.get(ALICE, document_id)
    counts = await row_counts(db)
    assert counts["documents"] == 1 and counts["ingestion_jobs"] == 1
    assert counts["document_chunks"] == counts["fts"] == 1
    assert await fulltext_matches(db, "gondola") == 0
    assert await fulltext_matches(db, "saffron") == 1
    if db.is_sqlite:  # not even FTS5's index pages hold its words
        async with db.session() as session:
            blocks = (
                await session.execute(text("select block from document_chunks_fts_data"))
            ).all()
        assert not any(b"gondola" in (block or b"") for (block,) in blocks)
        assert any(b"saffron" in (block or b"") for (block,) in blocks)
    assert vector_count(store, "a", "alice") == 1
    assert [h.document_id for h in await documents.retriever.search(ALICE, "saffron")] == [other]


async def test_expired_documents_are_not_retrieved(env) -> None:
    documents, db, _store = env
    document_id = await ingest(documents, b"The comet timetable.", "c.txt")
    assert await documents.retriever.search(ALICE, "comet")
    async with db.transaction() as session:
        await session.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(expires_at=utcnow() - timedelta(minutes=1))
        )
    assert await documents.retriever.search(ALICE, "comet") == []


async def test_rewrite_and_rerank_hooks_see_only_readable_hits(env) -> None:
    documents, _db, _store = env
    await ingest(documents, b"Bob's secret otter.", "bob.txt", owner="bob")
    mine = await ingest(documents, b"Alice keeps a beaver diary.", "alice.txt")
    seen: list[list[str]] = []

    async def rewrite(query: str) -> list[str]:
        return [query, "beaver"]

    async def rerank(query: str, hits):  # type: ignore[no-untyped-def]
        seen.append([hit.document_id for hit in hits])
        return list(reversed(hits))

    documents.retriever.rewrite = rewrite
    documents.retriever.rerank = rerank
    hits = await documents.retriever.search(ALICE, "otter", k=5)

    assert [hit.document_id for hit in hits] == [mine]  # found through the rewritten query
    assert seen == [[mine]]  # the reranker never saw Bob's chunk


def test_chunks_respect_the_size_limit_overlap_and_paragraphs() -> None:
    paragraphs = [
        " ".join(f"Paragraph {p} sentence {s} mentions item{p}x{s}." for s in range(6))
        for p in range(8)
    ]
    chunks = chunk_text("\n\n".join(paragraphs), max_tokens=60, overlap=12)

    assert len(chunks) > 4
    assert all(count_tokens(chunk) <= 60 for chunk in chunks)
    for before, after in itertools.pairwise(chunks):
        tail = before.split()[-3:]
        assert " ".join(tail) in after  # consecutive chunks overlap
    everything = " ".join(chunks)
    for p in range(8):
        for s in range(6):
            assert f"item{p}x{s}" in everything
    # A chunk starting a paragraph does so at a paragraph boundary, not mid-sentence.
    for chunk in chunks:
        for block in chunk.split("\n\n")[1:]:
            assert block.startswith("Paragraph")
