"""relaygraph/ingest_cli.py: `relaygraph ingest PATH... --tenant T --user U [--json]` against a
real data directory (its relational store: a SQLite file, or PostgreSQL through the
``backend`` fixture; embedded Chroma; the real offline embedder)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from identity import Principal
from memory.documents import open_documents
from relaygraph.cli import app
from runtime.settings import Settings
from store import Database
from tests.memory.documents_helpers import make_docx, warm_model_cache

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)


@pytest.fixture
def files(tmp_path: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    warm_model_cache(tmp_path_factory, data_dir / "models")
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "faq.md").write_text("# FAQ\n\nThe ferry to Samsø leaves at nine.\n")
    (folder / "policy.docx").write_bytes(make_docx(["Visitors sign in at the front desk."]))
    (folder / ".hidden.txt").write_text("not ingested")
    return folder


def ingest(*args: str) -> Result:
    return CliRunner().invoke(app, ["ingest", *args], catch_exceptions=False)


def lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


async def search(query: str, user: str = "ulla") -> list[str]:
    settings = Settings()
    db = Database(settings.store_url)
    try:
        async with open_documents(
            db, chroma_path=settings.chroma_dir, models_dir=settings.models_dir
        ) as documents:
            principal = Principal.with_roles("t", user, ["user"])
            return [hit.text for hit in await documents.retriever.search(principal, query, k=1)]
    finally:
        await db.dispose()


def test_ingest_walks_a_directory_and_prints_json_per_file(files: Path) -> None:
    result = ingest(str(files), "--tenant", "t", "--user", "ulla", "--json")

    assert result.exit_code == 0, result.output
    rows = lines(result)
    assert [Path(row["input"]).name for row in rows] == ["faq.md", "policy.docx"]
    assert all(row["status"] == "ready" and row["chunks"] == 1 for row in rows)
    assert all(row["unchanged"] is False and row["job_id"] for row in rows)
    assert "ferry" in asyncio.run(search("When does the boat depart?"))[0]
    assert asyncio.run(search("ferry", user="someone-else")) == []

    again = lines(ingest(str(files / "faq.md"), "--tenant", "t", "--user", "ulla", "--json"))
    assert again[0]["unchanged"] is True and again[0]["job_id"] is None
    assert again[0]["document_id"] == rows[0]["document_id"]

    (files / "faq.md").write_text("# FAQ\n\nThe ferry now leaves at ten.\n")
    changed = lines(ingest(str(files / "faq.md"), "--tenant", "t", "--user", "ulla", "--json"))
    assert changed[0]["unchanged"] is False
    assert changed[0]["document_id"] == rows[0]["document_id"]
    assert "ten" in asyncio.run(search("ferry"))[0]


def test_bad_files_are_reported_and_the_others_still_ingested(files: Path) -> None:
    (files / "empty.txt").write_bytes(b"")
    (files / "blob.bin").write_bytes(bytes(range(256)))

    result = ingest(
        str(files / "empty.txt"),
        str(files / "blob.bin"),
        str(files / "missing.pdf"),
        str(files / "faq.md"),
        "--tenant",
        "t",
        "--user",
        "ulla",
        "--json",
    )

    assert result.exit_code == 2
    rows = lines(result)
    assert [row.get("error") for row in rows] == [
        "empty_file",
        "unsupported_type",
        "not_found",
        None,
    ]
    assert rows[3]["status"] == "ready"


def test_human_output_and_progress_bar(files: Path) -> None:
    result = ingest(str(files / "faq.md"), "--tenant", "t", "--user", "ulla")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ready")
    assert "faq.md" in result.stdout
    assert "100%" in result.stderr  # the progress bar's final state


def test_refuses_clearly_while_a_server_owns_the_vector_index(files: Path) -> None:
    from memory.vectors import VectorStore

    with VectorStore.open_local(Settings().chroma_dir):  # as `relaygraph serve` would
        result = ingest(str(files / "faq.md"), "--tenant", "t", "--user", "ulla")

    assert result.exit_code == 2
    assert "open in another process" in result.stderr
    assert "RELAYGRAPH_CHROMA_URL" in result.stderr
