"""Erasure (GDPR Art. 17) end to end: a real run, its checkpoints, notes, audit payloads,
memories (one held), legal bases and store items of one user are erased; no file under the
data directory keeps a readable trace of their e-mail, name or CPR number; other users and
tenants keep everything."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from identity import Principal
from runtime import store_items
from runtime.export import export_user
from runtime.memory_services import open_memory_services
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import AuditPayload, Memory, Note, Run, Thread
from tests.memory.memory_helpers import WordHashEmbedder
from tools.audit import AuditLog

EMAIL = "maria.jensen@example.dk"
NAME = "Maria Jensen"
CPR = "010190-1234"
OTHER_EMAIL = "bob.hansen@example.org"

ALICE = Principal.with_roles("acme", "maria", ["user"])
BOB = Principal.with_roles("acme", "bob", ["user"])
MARIA_ELSEWHERE = Principal.with_roles("globex", "maria", ["user"])


def occurrences(root: Path, needle: str) -> list[str]:
    """Files under ``root`` whose raw bytes contain ``needle`` (any case, UTF-8 or UTF-16):
    every file, Chroma's HNSW segment files included."""
    forms = [needle.encode(), needle.encode("utf-16-le")]
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes().lower()
        if any(form.lower() in data for form in forms):
            hits.append(str(path.relative_to(root)))
    return hits


async def seed_run(system, principal: Principal, text: str) -> str:  # type: ignore[no-untyped-def]
    """A real run of the offline demo model, which turns "note X" into a notes_create call
    (ledger row, audit entry and payload) and answers: checkpoints hold the text too."""
    summary = await Runner(system).run(RunRequest(principal=principal, input_text=f"note {text}"))
    assert summary.run_status == "success"
    return summary.thread_id


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return Settings(data_dir=data_dir)


async def test_erasure_leaves_no_readable_trace_and_spares_others(
    tmp_path: Path, data_dir: Path, settings: Settings
) -> None:
    secret = f"My name is {NAME}, e-mail {EMAIL}, CPR {CPR}. I have diabetes."
    async with open_system(settings) as system:
        alice_thread = await seed_run(system, ALICE, secret)
        bob_thread = await seed_run(system, BOB, f"Bob here, write to {OTHER_EMAIL}.")
        async with open_memory_services(system, embedder=WordHashEmbedder()) as services:
            memories = services.memories
            held = await memories.remember(ALICE, f"{NAME} has diabetes, CPR {CPR}.")
            active = await memories.remember(ALICE, f"{NAME} reads mail at {EMAIL}.")
            elsewhere = await memories.remember(MARIA_ELSEWHERE, "Works at Globex as an engineer.")
            await memories.remember(BOB, f"Bob's address is {OTHER_EMAIL}.")
            assert held.status == "awaiting_basis" and active.status == "active"
            await store_items.put_item(
                db=system.db,
                tenant="acme",
                namespace=["memories", "maria"],
                key="profile",
                value={"email": EMAIL, "name": NAME},
            )
            assert occurrences(data_dir, EMAIL), "the seed must be on disk before erasure"

            report = await services.eraser().erase(tenant="acme", user="maria")

            assert report.ok, str(report.verification.to_dict())  # type: ignore[union-attr]
            assert report.deleted["threads"] == 1 and report.deleted["memories"] == 2
            assert report.deleted["notes"] == 1 and report.deleted["store_items"] == 1
            assert report.deleted["audit_payloads"] >= 1
            labels = report.verification.identifiers  # type: ignore[union-attr]
            assert {"email#1", "national_id#1"} <= set(labels)
            assert not any(EMAIL in label or CPR in label for label in labels)

            async with system.db.session() as session:
                assert await session.get(Thread, alice_thread) is None
                assert await session.get(Thread, bob_thread) is not None
                assert (
                    await session.execute(
                        select(func.count()).select_from(Note).where(Note.owner == "bob")
                    )
                ).scalar_one() == 1
                assert (
                    await session.execute(
                        select(func.count()).select_from(Run).where(Run.requester == "maria")
                    )
                ).scalar_one() == 0
                mine = (
                    (await session.execute(select(Memory.tenant).where(Memory.user == "maria")))
                    .scalars()
                    .all()
                )
                assert mine == ["globex"]  # the same user id in another tenant is untouched
                bob_payloads = (
                    await session.execute(
                        select(func.count())
                        .select_from(AuditPayload)
                        .where(AuditPayload.actor == "bob", AuditPayload.erased_at.is_(None))
                    )
                ).scalar_one()
            assert bob_payloads >= 1
            assert (await AuditLog(system.db).verify()).ok, "erasure must not break the chain"
            assert (
                await system.checkpointer.aget_tuple(
                    {"configurable": {"thread_id": alice_thread, "checkpoint_ns": ""}}
                )
                is None
            )
            assert [m.memory_id for m in await memories.recall(MARIA_ELSEWHERE, "Globex")] == [
                elsewhere.memory_id
            ]
            assert await memories.recall(ALICE, "diabetes mail") == []
    # Every file under the data dir, read as bytes after every process let go of it.
    for needle in (EMAIL, NAME, CPR):
        assert occurrences(data_dir, needle) == [], needle
    assert occurrences(data_dir, OTHER_EMAIL), "bob's data must survive maria's erasure"


async def test_erasure_of_everything_then_no_email_anywhere(
    tmp_path: Path, data_dir: Path, settings: Settings
) -> None:
    async with open_system(settings) as system:
        await seed_run(system, ALICE, f"Contact {NAME} at {EMAIL}")
        async with open_memory_services(system, embedder=WordHashEmbedder()) as services:
            await services.memories.remember(ALICE, f"{NAME}: {EMAIL}, CPR {CPR}")
            await services.memories.remember(MARIA_ELSEWHERE, f"{EMAIL} in globex")
            first = await services.eraser().erase(tenant="acme", user="maria")
            # The verification is honest: the same e-mail is still held in globex, in SQL
            # only (Chroma's files, residue included, hold none of it after the scrub).
            assert not first.ok
            assert first.verification is not None
            sql = {str(data_dir / "relaygraph.db"), str(data_dir / "relaygraph.db-wal")}
            assert first.verification.hits and set(first.verification.hits) <= sql
            assert any("email#1" in labels for labels in first.verification.hits.values())
            second = await services.eraser().erase(tenant="globex", user="maria")
            assert second.verification is not None
            assert second.verification.hits == {}, str(second.to_dict())
    for needle in (EMAIL, NAME, CPR):
        assert occurrences(data_dir, needle) == [], needle


async def test_export_contains_the_subject_and_nobody_else(
    tmp_path: Path, data_dir: Path, settings: Settings
) -> None:
    async with open_system(settings) as system:
        thread = await seed_run(system, ALICE, f"I am {NAME}, {EMAIL}")
        await seed_run(system, BOB, f"Bob at {OTHER_EMAIL}")
        async with open_memory_services(system, embedder=WordHashEmbedder()) as services:
            await services.memories.remember(ALICE, f"{NAME} likes tea")
            await services.memories.remember(ALICE, f"{NAME} has asthma")  # held
            await services.memories.remember(BOB, f"Bob likes coffee, {OTHER_EMAIL}")
            export = await export_user(
                db=system.db, checkpointer=system.checkpointer, tenant="acme", user="maria"
            )
    text = str(export)
    assert export["subject"] == {"tenant": "acme", "user": "maria"}
    assert [t["thread_id"] for t in export["threads"]] == [thread]
    messages = export["threads"][0]["values"]["messages"]
    assert any(EMAIL in str(m) for m in messages)
    assert {m["status"] for m in export["memories"]} == {"active", "awaiting_basis"}
    assert len(export["notes"]) == 1 and export["notes"][0]["owner"] == "maria"
    assert export["audit"] and all(a["actor"] == "maria" for a in export["audit"])
    assert export["runs"] and all(r["requester"] == "maria" for r in export["runs"])
    assert OTHER_EMAIL not in text and "coffee" not in text and "'bob'" not in text
    assert "content_key" not in text and "key_hash" not in text


async def test_erasure_on_sqlite_needs_no_postgres_driver(
    data_dir: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain install (no ``[postgres]`` extra) has no psycopg: erasure on the embedded
    defaults must not import it (it did, after deleting rows and before compacting)."""
    for module in ("psycopg", "psycopg.errors", "psycopg_pool"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    async with open_system(settings) as system:
        await seed_run(system, ALICE, f"Contact {NAME} at {EMAIL}")
        async with open_memory_services(system, embedder=WordHashEmbedder()) as services:
            report = await services.eraser().erase(tenant="acme", user="maria")
    assert report.ok, str(report.to_dict())
    assert report.compacted
