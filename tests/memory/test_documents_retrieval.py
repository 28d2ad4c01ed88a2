"""Hybrid retrieval (memory/retrieval.py) with the real offline MiniLM embedder, on SQLite's
FTS5 and PostgreSQL's tsvector (the ``backend`` fixture): a keyword
query and a paraphrase each rank the right chunk first; citations carry document, chunk,
page and score."""

from __future__ import annotations

from pathlib import Path

import pytest

from identity import Principal
from memory.embeddings import LocalMiniLMEmbedder
from memory.retrieval import query_terms
from tests.memory.documents_helpers import make_pdf, open_test_documents

ALICE = Principal.with_roles("acme", "alice", ["user"])

HANDBOOK = [
    "Employees may work remotely up to three days per week after their probation period.",
    "Expense claims must be filed within 30 days, with receipts attached for amounts above "
    "fifty euros.",
    "The office closes at 18:00; the alarm code changes on the first Monday of each month.",
    "New laptops are ordered through the IT portal and arrive within five working days.",
    "Parental leave is twenty weeks with full pay, and can be split into two periods.",
]


@pytest.fixture(scope="module")
def real_embedder(tmp_path_factory: pytest.TempPathFactory) -> LocalMiniLMEmbedder:
    return LocalMiniLMEmbedder(tmp_path_factory.mktemp("models"))


@pytest.fixture
async def handbook(tmp_path: Path, real_embedder: LocalMiniLMEmbedder, backend: str):  # type: ignore[no-untyped-def]
    async with open_test_documents(tmp_path, real_embedder) as (documents, _db, _store):
        submission = await documents.ingestor.submit(
            tenant="acme", owner="alice", data=make_pdf(HANDBOOK), source="handbook.pdf"
        )
        assert submission.job_id
        view = await documents.ingestor.run_job(submission.job_id)
        assert view.status == "succeeded"
        yield documents, submission.document_id


async def test_a_keyword_query_ranks_the_right_chunk_first(handbook) -> None:  # type: ignore[no-untyped-def]
    documents, document_id = handbook
    hits = await documents.retriever.search(ALICE, "alarm code", k=3)

    assert hits[0].page == 3
    assert hits[0].fulltext_rank == 1 and hits[0].vector_rank == 1
    citation = hits[0].citation.to_dict()
    assert citation["document_id"] == document_id
    assert citation["chunk_id"] == hits[0].chunk_id and len(citation["chunk_id"]) == 32
    assert citation["page"] == 3 and citation["source"] == "handbook.pdf"
    assert citation["score"] == pytest.approx(2 / 61, abs=1e-6)  # RRF: first in both lists
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert hits[0].to_dict()["trust"] == "untrusted"


@pytest.mark.parametrize(
    ("question", "page"),
    [
        ("How long may a mum or dad stay at home with a newborn?", 5),
        ("Am I allowed to do my job from home?", 1),
        ("When will my new computer be delivered?", 4),
    ],
)
async def test_a_paraphrase_finds_the_right_chunk_through_its_meaning(  # type: ignore[no-untyped-def]
    handbook, question: str, page: int
) -> None:
    documents, _ = handbook
    hits = await documents.retriever.search(ALICE, question, k=3)

    assert hits[0].page == page
    assert hits[0].vector_rank == 1


async def test_the_owner_of_nothing_finds_nothing(handbook) -> None:  # type: ignore[no-untyped-def]
    documents, _ = handbook
    stranger = Principal.with_roles("acme", "mallory", ["user"])
    assert await documents.retriever.search(stranger, "alarm code") == []


def test_query_terms_are_distinct_words_safe_for_match_syntax() -> None:
    assert query_terms('alarm "code" OR NEAR(x) alarm*') == ["alarm", "code", "near", "x"]
    assert query_terms("Where is the alarm?") == ["alarm"]
    assert query_terms("to be or not to be") == ["to", "be", "or", "not"]
