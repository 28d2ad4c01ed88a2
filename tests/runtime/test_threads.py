"""Thread rows as the API writes them: creation with ``if_exists``, and the stamp a
submitted run puts on its thread (on both store backends)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from identity import Principal, local_principal
from runtime.runs import RunConflict, Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from runtime.threads import ThreadService
from store.models import Run, Thread

pytestmark = pytest.mark.usefixtures("backend")
OWNER = local_principal()
OUTSIDER = Principal(tenant="elsewhere", user="eve")


@pytest.fixture
async def threads(data_dir: Path) -> AsyncIterator[ThreadService]:
    async with open_system(Settings(data_dir=data_dir)) as system:
        yield ThreadService(Runner(system))


def _statements(service: ThreadService) -> list[str]:
    seen: list[str] = []

    @event.listens_for(service.system.db.engine.sync_engine, "before_cursor_execute")
    def _record(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    return seen


async def _row(service: ThreadService, thread_id: str) -> Thread:
    async with service.system.db.session() as session:
        row = await session.get(Thread, thread_id)
    assert row is not None
    return row


async def test_create_writes_without_reading_first(threads: ThreadService) -> None:
    statements = _statements(threads)
    created = await threads.create(OWNER, thread_id="t-new", metadata={"topic": "tea"})
    assert created["thread_id"] == "t-new"
    assert created["metadata"] == {"topic": "tea"}
    assert created["status"] == "idle"
    assert created["values"] == {} and created["interrupts"] == {}
    assert not [s for s in statements if s.startswith("SELECT")], statements
    assert [s for s in statements if s.startswith("INSERT INTO threads")]
    row = await _row(threads, "t-new")
    assert (row.tenant, row.owner, row.metadata_) == (OWNER.tenant, OWNER.user, {"topic": "tea"})
    assert row.created_at == created["created_at"] == created["updated_at"]


async def test_if_exists_raise_and_do_nothing_leave_the_thread_as_it_was(
    threads: ThreadService,
) -> None:
    first = await threads.create(OWNER, thread_id="t1", metadata={"v": 1})
    with pytest.raises(RunConflict):
        await threads.create(OWNER, thread_id="t1", metadata={"v": 2})
    again = await threads.create(OWNER, thread_id="t1", metadata={"v": 3}, if_exists="do_nothing")
    assert again["metadata"] == {"v": 1}
    assert again["created_at"] == first["created_at"]
    # Another tenant's caller learns nothing and takes nothing over, whatever it asks.
    for if_exists in ("raise", "do_nothing"):
        with pytest.raises(RunConflict):
            await threads.create(OUTSIDER, thread_id="t1", metadata={}, if_exists=if_exists)
    row = await _row(threads, "t1")
    assert (row.tenant, row.owner, row.metadata_) == (OWNER.tenant, OWNER.user, {"v": 1})


async def test_a_run_stamps_its_thread_reading_it_once(threads: ThreadService) -> None:
    await threads.create(OWNER, thread_id="t2", metadata={"topic": "tea"})
    statements = _statements(threads)
    run = await threads.runner.submit(
        RunRequest(principal=OWNER, thread_id="t2", input_text="hello")
    )
    thread_reads = [s for s in statements if s.startswith("SELECT threads.")]
    assert len(thread_reads) == 1, thread_reads
    row = await _row(threads, "t2")
    assert row.status == "busy"
    assert (row.graph_id, row.assistant_id) == (run.graph_id, run.assistant_id)
    assert row.graph_version == run.graph_version
    assert row.metadata_ == {
        "topic": "tea",
        "graph_id": run.graph_id,
        "assistant_id": run.assistant_id,
    }


async def test_a_change_between_read_and_write_is_kept(
    threads: ThreadService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The submission's one-UPDATE stamp applies only to the row as it read it; a thread
    changed meanwhile (here: metadata patched) is read again and the change kept."""
    await threads.create(OWNER, thread_id="t3", metadata={"topic": "tea"})
    stale = await _row(threads, "t3")
    await threads.patch(OWNER, "t3", {"late": True})

    async def stale_read(thread_id: Any, principal: Any) -> Thread:
        return stale

    monkeypatch.setattr(threads.runner, "_visible_thread", stale_read)
    run = await threads.runner.submit(
        RunRequest(principal=OWNER, thread_id="t3", input_text="hello")
    )
    row = await _row(threads, "t3")
    assert row.status == "busy"
    assert row.metadata_ == {
        "topic": "tea",
        "late": True,
        "graph_id": run.graph_id,
        "assistant_id": run.assistant_id,
    }


async def test_a_thread_deleted_after_its_read_is_created_again(
    threads: ThreadService, monkeypatch: pytest.MonkeyPatch
) -> None:
    await threads.create(OWNER, thread_id="t4", metadata={"topic": "tea"})
    stale = await _row(threads, "t4")
    await threads.delete(OWNER, "t4")

    async def stale_read(thread_id: Any, principal: Any) -> Thread:
        return stale

    monkeypatch.setattr(threads.runner, "_visible_thread", stale_read)
    run = await threads.runner.submit(
        RunRequest(principal=OWNER, thread_id="t4", input_text="hello")
    )
    row = await _row(threads, "t4")
    assert row.status == "busy"
    assert row.metadata_ == {"graph_id": run.graph_id, "assistant_id": run.assistant_id}
    async with threads.system.db.session() as session:
        assert (await session.get(Run, run.run_id)) is not None


async def test_a_thread_whose_graph_is_gone_is_listed_but_its_state_is_a_conflict(
    threads: ThreadService,
) -> None:
    # A user graph registered when the thread ran, not in this server's configuration now:
    # the thread must not break reading and searching the tenant's threads (the inbox).
    await threads.create(OWNER, thread_id="t-gone", metadata={})
    await threads.create(OWNER, thread_id="t-fine", metadata={})
    async with threads.system.db.transaction() as session:
        row = await session.get(Thread, "t-gone")
        assert row is not None
        row.graph_id = "no_longer_registered"

    shown = await threads.get(OWNER, "t-gone")
    found = await threads.search(OWNER)

    assert shown["values"] == {} and shown["interrupts"] == {}
    assert {item["thread_id"] for item in found} >= {"t-gone", "t-fine"}
    for read in (threads.state(OWNER, "t-gone"), threads.history(OWNER, "t-gone")):
        with pytest.raises(RunConflict, match=r"no_longer_registered.*RELAYGRAPH_GRAPHS"):
            await read


async def test_a_run_claimed_at_submission_starts_after_it_was_created(
    threads: ThreadService,
) -> None:
    await threads.create(OWNER, thread_id="t-claim", metadata={})
    run = await threads.runner.submit(
        RunRequest(principal=OWNER, thread_id="t-claim", input_text="hello"), claim_for="w1"
    )
    async with threads.system.db.session() as session:
        row = await session.get(Run, run.run_id)
    assert row is not None and row.started_at is not None
    assert row.created_at <= row.started_at
    assert (run.created_at, run.started_at) == (row.created_at, row.started_at)
