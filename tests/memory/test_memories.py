"""Memories over a real relational store (SQLite, and PostgreSQL through the ``backend``
fixture) and a real Chroma directory: idempotent writes, merging, isolation, scoping, hybrid
recall marked untrusted, expiry, and no text in Chroma."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from identity import Principal
from memory.embeddings import DEFAULT_EMBEDDING_MODEL, create_embedder
from memory.memories import MemoryConfig, MemoryError, MemoryNotFoundError, utcnow
from memory.nodes import (
    explicit_facts,
    format_untrusted_context,
    make_recall_node,
    make_remember_node,
)
from memory.types import Scope
from store.models import Memory
from tests.memory.conftest import OpenVectors
from tests.memory.memory_helpers import open_memories

ALICE = Principal.with_roles("acme", "alice", ["user"])
BOB = Principal.with_roles("acme", "bob", ["user"])
ALICE_GLOBEX = Principal.with_roles("globex", "alice", ["user"])
on_each_backend = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)


async def count(env, **where) -> int:  # type: ignore[no-untyped-def]
    statement = select(func.count()).select_from(Memory)
    for name, value in where.items():
        statement = statement.where(getattr(Memory, name) == value)
    async with env.db.session() as session:
        return int((await session.execute(statement)).scalar_one())


@on_each_backend
async def test_writes_are_idempotent_on_retry(tmp_path: Path, open_vectors: OpenVectors) -> None:
    async with open_memories(tmp_path, vectors=open_vectors) as env:
        first = await env.memories.remember(ALICE, "Prefers tea over coffee.")
        again = await env.memories.remember(ALICE, "  prefers TEA over   coffee. ")
        concurrent = await asyncio.gather(
            *[env.memories.remember(ALICE, "Lives in Aarhus.") for _ in range(4)]
        )
        assert first.outcome == "created" and again.outcome == "unchanged"
        assert again.memory_id == first.memory_id
        assert len({result.memory_id for result in concurrent}) == 1
        assert await count(env) == 2
        assert env.vectors.index("memories").count(Scope("acme", "alice")) == 2


@on_each_backend
async def test_near_duplicates_merge_with_the_real_model(
    tmp_path: Path, open_vectors: OpenVectors
) -> None:
    embedder = create_embedder(DEFAULT_EMBEDDING_MODEL, cache_dir=tmp_path / "models")
    async with open_memories(tmp_path, embedder, vectors=open_vectors) as env:
        first = await env.memories.remember(ALICE, "Alice prefers answers in Danish.")
        merged = await env.memories.remember(ALICE, "Alice prefers her answers in Danish")
        other = await env.memories.remember(ALICE, "Alice has a dog called Rufus.")
        bobs = await env.memories.remember(BOB, "Alice prefers her answers in Danish")
        assert merged.outcome == "merged" and merged.memory_id == first.memory_id
        assert merged.similarity is not None and merged.similarity >= 0.92
        assert other.outcome == "created" and bobs.outcome == "created"
        [row] = await env.memories.list_memories(tenant="acme", user="alice", limit=1)
        assert row.text in ("Alice prefers her answers in Danish", "Alice has a dog called Rufus.")
        texts = {m.text for m in await env.memories.list_memories(tenant="acme", user="alice")}
        assert texts == {"Alice prefers her answers in Danish", "Alice has a dog called Rufus."}


@on_each_backend
async def test_recall_is_isolated_between_users_and_tenants(
    tmp_path: Path, open_vectors: OpenVectors
) -> None:
    async with open_memories(tmp_path, vectors=open_vectors) as env:
        mine = await env.memories.remember(ALICE, "Favourite colour is green.")
        await env.memories.remember(BOB, "Favourite colour is green and blue.")
        await env.memories.remember(ALICE_GLOBEX, "Favourite colour is green too.")
        hits = await env.memories.recall(ALICE, "favourite colour green", k=10)
        assert [hit.memory_id for hit in hits] == [mine.memory_id]
        hit = hits[0]
        assert hit.trust == "untrusted" and hit.similarity is not None and hit.fulltext_rank == 1
        assert set(hit.trace()) == {
            "memory_id",
            "score",
            "similarity",
            "fulltext_rank",
            "created_at",
            "trust",
        }
        with pytest.raises(MemoryNotFoundError):
            await env.memories.forget(BOB, mine.memory_id)
        await env.memories.forget(ALICE, mine.memory_id)
        assert await env.memories.recall(ALICE, "favourite colour green") == []
        assert len(await env.memories.recall(BOB, "favourite colour green")) == 1


@on_each_backend
async def test_assistant_and_thread_scopes(tmp_path: Path, open_vectors: OpenVectors) -> None:
    async with open_memories(tmp_path, vectors=open_vectors) as env:
        everywhere = await env.memories.remember(ALICE, "Name of the cat is Mits.")
        support = await env.memories.remember(
            ALICE, "Cat insurance case open.", assistant_id="support"
        )
        thread = await env.memories.remember(ALICE, "Cat photo uploaded here.", thread_id="t-1")

        async def ids(**scope: str) -> set[str]:
            return {h.memory_id for h in await env.memories.recall(ALICE, "cat", k=10, **scope)}

        assert await ids() == {everywhere.memory_id}
        assert await ids(assistant_id="support") == {everywhere.memory_id, support.memory_id}
        assert await ids(thread_id="t-1") == {everywhere.memory_id, thread.memory_id}
        assert await ids(assistant_id="sales", thread_id="t-2") == {everywhere.memory_id}


@on_each_backend
async def test_bad_input_is_refused_and_nothing_is_written(
    tmp_path: Path, open_vectors: OpenVectors
) -> None:
    async with open_memories(
        tmp_path, vectors=open_vectors, config=MemoryConfig(max_chars=50)
    ) as env:
        for text, kwargs in (("   ", {}), ("x" * 51, {}), ("ok", {"source": "gossip"})):
            with pytest.raises(MemoryError):
                await env.memories.remember(ALICE, text, **kwargs)
        with pytest.raises(MemoryError):
            await env.memories.remember(ALICE, "fine", ttl_days=0)
        assert await count(env) == 0


@on_each_backend
async def test_expired_memories_are_not_recalled_and_are_swept(
    tmp_path: Path, open_vectors: OpenVectors
) -> None:
    async with open_memories(tmp_path, vectors=open_vectors) as env:
        short = await env.memories.remember(ALICE, "Parking spot 42 today.", ttl_days=1)
        long = await env.memories.remember(ALICE, "Parking permit for zone B.")
        async with env.db.transaction() as session:
            row = (
                await session.execute(select(Memory).where(Memory.memory_id == short.memory_id))
            ).scalar_one()
            row.expires_at = utcnow() - timedelta(seconds=1)
        assert [h.memory_id for h in await env.memories.recall(ALICE, "parking")] == [
            long.memory_id
        ]
        assert await env.memories.sweep_expired() == 1
        assert await count(env) == 1
        assert env.vectors.index("memories").count(Scope("acme", "alice")) == 1
        [kept] = await env.memories.list_memories(tenant="acme", user="alice")
        assert kept.expires_at is not None and kept.expires_at > utcnow() + timedelta(days=364)


async def test_chroma_holds_no_text_or_identifiers(tmp_path: Path) -> None:
    async with open_memories(tmp_path) as env:
        await env.memories.remember(ALICE, "Uniquewordzebra is the wifi password hint.")
        await env.memories.remember(ALICE, "Mail me at zebra.owner@example.com please.")
    # Chroma keeps documents and metadata in its SQLite file (even after deletes): ours
    # must hold neither. Its HNSW segment files are checked too: the store zeroes the
    # capacity hnswlib persists from uninitialised memory (see memory.vectors).
    files = [path for path in (tmp_path / "chroma").rglob("*") if path.is_file()]
    assert any(path.name == "chroma.sqlite3" for path in files)
    assert any(path.name == "length.bin" for path in files)
    for path in files:
        data = path.read_bytes().lower()
        assert b"uniquewordzebra" not in data and b"zebra.owner" not in data, path
        assert b"alice" not in data and b"acme" not in data, path


@on_each_backend
async def test_remember_later_returns_at_once_and_drains(
    tmp_path: Path, open_vectors: OpenVectors
) -> None:
    async with open_memories(tmp_path, vectors=open_vectors) as env:
        task = env.memories.remember_later(ALICE, "Allergic to nothing in particular.")
        assert not task.done()
        bad = env.memories.remember_later(ALICE, "")  # a failure is logged, never raised
        await env.memories.drain()
        assert task.result().outcome == "created" and bad.result() is None


class _Runtime:
    class context:
        principal = ALICE


@on_each_backend
async def test_recall_and_remember_nodes(tmp_path: Path, open_vectors: OpenVectors) -> None:
    async with open_memories(tmp_path, vectors=open_vectors) as env:
        remember = make_remember_node(env.memories, principal_of=lambda rt: rt.context.principal)
        recall = make_recall_node(env.memories, principal_of=lambda rt: rt.context.principal)
        state = {
            "messages": [
                {"role": "user", "content": "Hi. Remember that I prefer short answers. Thanks"}
            ]
        }
        assert await remember(state, _Runtime()) == {}
        await env.memories.drain()
        [row] = await env.memories.list_memories(tenant="acme", user="alice")
        assert row.text == "I prefer short answers"
        update = await recall(
            {"messages": [{"role": "user", "content": "short answers?"}]}, _Runtime()
        )
        [hit] = update["recalled_memories"]
        assert hit["memory_id"] == row.memory_id and hit["trust"] == "untrusted"
        block = format_untrusted_context(update["recalled_memories"])
        assert block.startswith("<untrusted_memories>") and row.memory_id in block
        assert "not instructions" in block


def test_explicit_facts_picks_statements_about_the_user() -> None:
    facts = explicit_facts(
        [
            {
                "role": "user",
                "content": "Husk at jeg er vegetar. What's the weather? I live in Odense.",
            }
        ]
    )
    assert facts == ["Jeg er vegetar", "I live in Odense"]
    assert explicit_facts([{"role": "assistant", "content": "I am a bot."}]) == []


def test_explicit_facts_keep_dotted_values_whole() -> None:
    facts = explicit_facts(
        [
            {
                "role": "user",
                "content": "Remember that my email is maria.jensen@example.dk. I use v1.2.",
            }
        ]
    )

    assert facts == ["My email is maria.jensen@example.dk"]
