"""The retention sweeper deletes, for real, everything past its expiry: memories (rows and
vectors), documents and chunks, store items with their vectors, cache entries, idle threads
with their checkpoints, and old files; nothing that is still live."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update

from identity import Principal
from memory.store import STORE_NAMESPACE, RelayStore, StoreIndex
from memory.types import Scope
from memory.vectors import VectorStore
from runtime import store_items
from runtime.memory_services import open_memory_services
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import (
    Document,
    DocumentChunk,
    Memory,
    ProviderCacheEntry,
    StoreItem,
    Thread,
    utcnow,
)
from tests.memory.memory_helpers import WordHashEmbedder

ALICE = Principal.with_roles("acme", "alice", ["user"])


async def test_sweep_deletes_what_expired_and_keeps_the_rest(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, thread_ttl_days=30, file_ttl_days=30)
    past = utcnow() - timedelta(seconds=1)
    async with open_system(settings) as system:
        old_thread = (
            await Runner(system).run(RunRequest(principal=ALICE, input_text="note old"))
        ).thread_id
        new_thread = (
            await Runner(system).run(RunRequest(principal=ALICE, input_text="note new"))
        ).thread_id
        async with open_memory_services(system, embedder=WordHashEmbedder()) as services:
            gone = await services.memories.remember(ALICE, "Temporary code is 1234.", ttl_days=1)
            kept = await services.memories.remember(ALICE, "Prefers green tea.")
            index = StoreIndex(
                system.db, services.vectors.index(STORE_NAMESPACE), WordHashEmbedder()
            )
            store = RelayStore(db=system.db, tenant="acme", backend=store_items, index=index)
            await store.aput(("s",), "old", {"t": "old item"}, ttl=1.0)
            await store.aput(("s",), "live", {"t": "live item"})
            async with system.db.transaction() as session:
                await session.execute(
                    update(Memory).where(Memory.memory_id == gone.memory_id).values(expires_at=past)
                )
                await session.execute(
                    update(StoreItem).where(StoreItem.key == "old").values(expires_at=past)
                )
                await session.execute(
                    update(Thread)
                    .where(Thread.thread_id == old_thread)
                    .values(updated_at=utcnow() - timedelta(days=31))
                )
                session.add(
                    Document(
                        id="doc1",
                        tenant="acme",
                        owner="alice",
                        source="a.txt",
                        status="ready",
                        sensitivity="none",
                        findings={},
                        size_bytes=3,
                        page_count=1,
                        chunk_count=1,
                        version=1,
                        expires_at=past,
                    )
                )
                await session.flush()
                session.add(
                    DocumentChunk(
                        chunk_id="c1",
                        document_id="doc1",
                        tenant="acme",
                        owner="alice",
                        seq=0,
                        text="expired chunk",
                        content_hash="x",
                        embedding_model="test",
                    )
                )
                session.add(
                    ProviderCacheEntry(
                        key="k",
                        deployment="d",
                        tenant="acme",
                        user="alice",
                        response={},
                        expires_at=past,
                    )
                )
            services.vectors.index("chunks").add(Scope("acme", "alice"), ["c1"], [[1.0, 0.0]])
            files = settings.files_dir / "acme"
            files.mkdir(parents=True)
            (files / "old.txt").write_text("old")
            (files / "new.txt").write_text("new")
            stale = (utcnow() - timedelta(days=31)).timestamp()
            os.utime(files / "old.txt", (stale, stale))

            report = await services.sweeper().sweep()

            assert report.deleted == {
                "memories": 1,
                "documents": 1,
                "chunks": 1,
                "store_items": 1,
                "cache_entries": 1,
                "trace_steps": 0,  # fresh (the default keeps them 30 days)
                "threads": 1,
                "files": 1,
            }
            assert [
                m.memory_id
                for m in await services.memories.list_memories(tenant="acme", user="alice")
            ] == [kept.memory_id]
            assert services.vectors.index("memories").count(Scope("acme", "alice")) == 1
            assert services.vectors.index("chunks").count(Scope("acme", "alice")) == 0
            assert services.vectors.index(STORE_NAMESPACE).count(Scope("acme")) == 1
            assert sorted(p.name for p in files.iterdir()) == ["new.txt"]
            async with system.db.session() as session:
                threads = (await session.execute(select(Thread.thread_id))).scalars().all()
                chunks = (
                    await session.execute(select(func.count()).select_from(DocumentChunk))
                ).scalar_one()
            assert threads == [new_thread] and chunks == 0
            assert (
                await system.checkpointer.aget_tuple(
                    {"configurable": {"thread_id": old_thread, "checkpoint_ns": ""}}
                )
                is None
            )
            assert (await services.sweeper().sweep()).total == 0


def occurrences(root: Path, needle: str) -> list[str]:
    """Files under ``root`` whose raw bytes contain ``needle`` (any case, UTF-8 or UTF-16),
    as the erasure tests read them: every file, Chroma's segment files included."""
    forms = [needle.encode().lower(), needle.encode("utf-16-le").lower()]
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes().lower()
        if any(form in data for form in forms):
            hits.append(str(path.relative_to(root)))
    return hits


async def test_sweep_leaves_no_readable_trace_of_what_expired(data_dir: Path) -> None:
    """Deleting by id only marks vectors (hnswlib) and full-text entries (FTS5), and the
    WAL keeps old pages: after the sweep, no file under the data dir, read while the
    process still runs, holds the expired memory's words; the live one is intact."""
    settings = Settings(data_dir=data_dir)
    word = "zanzibarquartz"
    async with open_system(settings) as system:
        async with open_memory_services(system, embedder=WordHashEmbedder()) as services:
            gone = await services.memories.remember(
                ALICE, f"Locker code is {word} 7731.", ttl_days=1
            )
            kept = await services.memories.remember(ALICE, "Prefers green tea.")
            async with system.db.transaction() as session:
                await session.execute(
                    update(Memory)
                    .where(Memory.memory_id == gone.memory_id)
                    .values(expires_at=utcnow() - timedelta(seconds=1))
                )
            assert occurrences(data_dir, word), "the seed must be on disk before the sweep"
            marks = settings.chroma_dir / "relaygraph-rebuilds"

            report = await services.sweeper().sweep()

            assert report.deleted["memories"] == 1 and report.rebuilt == 1
            assert occurrences(data_dir, word) == []
            assert occurrences(data_dir, "Locker code") == []
            assert not marks.exists() or list(marks.iterdir()) == []
            hits = await services.memories.recall(ALICE, "green tea")
            assert [hit.memory_id for hit in hits] == [kept.memory_id]
            assert services.vectors.index("memories").count(Scope("acme", "alice")) == 1
            quiet = await services.sweeper().sweep()
            assert quiet.total == 0 and quiet.rebuilt == 0 and quiet.residue == {}
    assert occurrences(data_dir, word) == []


async def test_a_scope_marked_for_rebuild_is_rebuilt_on_open(data_dir: Path) -> None:
    """A crash between a sweep's delete by id and its rebuild: the durable mark makes the
    next open rebuild the partition (so the deleted vector leaves the segment files)."""
    path = data_dir / "chroma"
    scope = Scope("acme", "alice")
    with VectorStore.open_local(path) as store:
        index = store.index("memories")
        index.add(scope, ["a", "b"], [[1.0, 0.0], [0.0, 1.0]])
        index.schedule_rebuild(scope)
        index.delete(scope, ["a"])
        name = store.collection_name("memories", scope)
        assert (path / "relaygraph-rebuilds" / name).exists()
        old = store._collection(name, create=False)
        assert old is not None
        old_id = old.id
        # "crash": no rebuild; close releases the lock like a dead process would.
    with VectorStore.open_local(path) as store:
        assert not (path / "relaygraph-rebuilds" / name).exists()
        fresh = store._collection(name, create=False)
        assert fresh is not None and fresh.id != old_id
        assert store.index("memories").count(scope) == 1
