"""The README's path for a held document, end to end through the CLI: ``relaygraph ingest``
holds it, ``relaygraph consent grant`` releases and indexes it, ``consent withdraw`` deletes
it, ``consent reject`` deletes what is held. Real data directory (its relational store,
embedded Chroma, the offline embedder)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from identity import Principal
from memory.documents import open_documents
from memory.types import Scope
from relaygraph.cli import app
from runtime.settings import Settings
from store import Database
from tests.memory.documents_helpers import row_counts, warm_model_cache

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)

ALICE = Principal.with_roles("acme", "alice", ["user"])
WHO = ("--tenant", "acme", "--user", "alice")
NOTES = "# Notes\n\nAlice is a member of the trade union; the kestrel strike starts Monday.\n"


@pytest.fixture
def notes(tmp_path: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    warm_model_cache(tmp_path_factory, data_dir / "models")
    path = tmp_path / "notes.md"
    path.write_text(NOTES)
    return path


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def ingest(path: Path) -> dict[str, Any]:
    result = cli("ingest", str(path), *WHO, "--json")
    assert result.exit_code == 0, result.output
    row: dict[str, Any] = json.loads(result.stdout)
    return row


def consent_list() -> dict[str, Any]:
    result = cli("consent", "list", *WHO, "--json")
    assert result.exit_code == 0, result.output
    listed: dict[str, Any] = json.loads(result.stdout)
    return listed


async def inspect_store(query: str) -> tuple[list[str], dict[str, int], int]:
    """Hits of ``query`` for alice, the document tables' row counts, alice's chunk vectors."""
    settings = Settings()
    db = Database(settings.store_url)
    try:
        async with open_documents(
            db, chroma_path=settings.chroma_dir, models_dir=settings.models_dir
        ) as documents:
            hits = await documents.retriever.search(ALICE, query, k=3)
            vectors = documents.retriever.vectors.count(Scope("acme", "alice"))
            return [hit.text for hit in hits], await row_counts(db), vectors
    finally:
        await db.dispose()


def files_mentioning(root: Path, word: bytes) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.rglob("*") if p.is_file() and word in p.read_bytes()]


def test_consent_releases_a_held_document_and_withdrawal_deletes_it(notes: Path) -> None:
    held = ingest(notes)
    assert held["status"] == "awaiting_basis" and held["sensitivity"] == "special"
    assert [d["document_id"] for d in consent_list()["held_documents"]] == [held["document_id"]]

    granted = cli("consent", "grant", *WHO)

    assert granted.exit_code == 0, granted.output
    assert "released 0 held memories and 1 held documents" in granted.stdout
    again = ingest(notes)  # the same content: a no-op, now indexed
    assert again["status"] == "ready" and again["unchanged"] is True and again["chunks"] == 1
    assert again["document_id"] == held["document_id"]
    listed = consent_list()
    assert listed["held_documents"] == [] and len(listed["bases"]) == 1
    hits, counts, vectors = asyncio.run(inspect_store("kestrel strike"))
    assert hits and "kestrel" in hits[0]
    assert counts["document_chunks"] == 1 and vectors == 1

    basis_id = listed["bases"][0]["id"]
    withdrawn = cli("consent", "withdraw", *WHO, basis_id, "--json")

    assert withdrawn.exit_code == 0, withdrawn.output
    assert json.loads(withdrawn.stdout)["deleted_documents"] == 1
    hits, counts, vectors = asyncio.run(inspect_store("kestrel strike"))
    assert hits == [] and vectors == 0
    assert all(n == 0 for n in counts.values()), counts
    settings = Settings()
    for root in (settings.files_dir, settings.chroma_dir):
        assert files_mentioning(root, b"kestrel") == []
    assert ingest(notes)["status"] == "awaiting_basis"  # no basis any more: held again


def test_consent_reject_deletes_held_documents(notes: Path) -> None:
    held = ingest(notes)
    assert held["status"] == "awaiting_basis"

    rejected = cli("consent", "reject", *WHO, "--json")

    assert rejected.exit_code == 0, rejected.output
    assert json.loads(rejected.stdout) == {"deleted": 0, "deleted_documents": 1}
    assert consent_list()["held_documents"] == []
    _hits, counts, vectors = asyncio.run(inspect_store("kestrel"))
    assert all(n == 0 for n in counts.values()) and vectors == 0
    granted = cli("consent", "grant", *WHO, "--json")
    assert json.loads(granted.stdout)["released_documents"] == 0
