"""PostgreSQL specifics of the scale-out store: migrations both ways and under
concurrency, the Postgres checkpointer (with thread copy and rollback), NOTIFY triggers,
and claims that keep one running run per thread across processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from sqlalchemy import create_engine, text

from graphs.checkpointer import copy_thread, delete_checkpoints
from identity import local_principal
from identity.ratelimit import RateLimiter
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store import current_revision, downgrade, migrate, migration_head
from store.migrate import sync_url
from store.notify import RUNS_CHANNEL, parse_run_notification

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.postgres, pytest.mark.slow]
HELLO = {"messages": [{"type": "human", "content": "hello"}]}


@pytest.fixture
def pg_url(postgres_cluster) -> str:  # type: ignore[no-untyped-def]
    return str(postgres_cluster.database_url())


def _triggers(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("select tgname from pg_trigger where not tgisinternal")
            ).all()
            return {row[0] for row in rows}
    finally:
        engine.dispose()


def test_migrations_run_up_and_down_on_postgres(pg_url: str) -> None:
    migrate(pg_url)
    assert current_revision(pg_url) == migration_head()
    assert {"runs_notify", "run_events_notify"} <= _triggers(pg_url)
    downgrade(pg_url, "0011")
    assert not {"runs_notify", "run_events_notify"} & _triggers(pg_url)
    downgrade(pg_url, "base")
    assert current_revision(pg_url) is None
    migrate(pg_url)
    assert current_revision(pg_url) == migration_head()


def test_concurrent_migrators_do_not_race(pg_url: str) -> None:
    """Processes starting together (N API + M workers) migrate under the advisory lock."""
    code = "import sys; from store import migrate; migrate(sys.argv[1])"
    starters = [
        subprocess.Popen([sys.executable, "-c", code, pg_url], cwd=REPO, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [process.communicate(timeout=120)[1] for process in starters]
    assert [process.returncode for process in starters] == [0] * 4, errors
    assert current_revision(pg_url) == migration_head()


async def test_the_store_and_checkpoints_live_in_postgres(pg_url: str, data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, database_url=pg_url)
    async with open_system(settings) as system:
        assert system.db.is_postgres
        assert isinstance(system.checkpointer, AsyncPostgresSaver)
        summary = await Runner(system).run(RunRequest(principal=local_principal(), input=HELLO))
        assert summary.status == "success"
        saver = system.checkpointer
        source = {"configurable": {"thread_id": summary.thread_id, "checkpoint_ns": ""}}
        history = [item async for item in saver.alist(source)]
        assert len(history) >= 2

        await copy_thread(saver, summary.thread_id, "copy")
        copied = [item async for item in saver.alist({"configurable": {"thread_id": "copy"}})]
        assert [c.checkpoint["id"] for c in copied] == [h.checkpoint["id"] for h in history]
        latest = await saver.aget_tuple({"configurable": {"thread_id": "copy"}})
        assert latest is not None
        assert latest.checkpoint["channel_values"] == history[0].checkpoint["channel_values"]

        newest = history[0].config["configurable"]["checkpoint_id"]
        await delete_checkpoints(saver, summary.thread_id, [newest])
        left = [item async for item in saver.alist(source)]
        assert [item.checkpoint["id"] for item in left] == [
            item.checkpoint["id"] for item in history[1:]
        ]
    assert not (data_dir / "relaygraph.db").exists()
    assert not (data_dir / "checkpoints.db").exists()


async def test_a_submitted_run_notifies_listeners(pg_url: str, data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, database_url=pg_url)
    async with open_system(settings) as writer, open_system(settings) as reader:
        assert reader.db.listener is not None
        heard: asyncio.Queue[str | None] = asyncio.Queue()
        reader.db.listener.subscribe(RUNS_CHANNEL, heard.put_nowait)
        await asyncio.wait_for(reader.db.listener.connected.wait(), 10)
        run = await Runner(writer).submit(RunRequest(principal=local_principal(), input=HELLO))
        async with asyncio.timeout(10):
            while True:
                payload = await heard.get()
                if payload and payload.startswith(run.run_id):
                    break
    assert parse_run_notification(payload) == (run.run_id, "pending", None, None)


async def test_concurrent_claimers_take_one_run_per_thread(pg_url: str, data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, database_url=pg_url)
    async with open_system(settings) as one, open_system(settings) as two:
        submitter = Runner(one)
        first = await submitter.submit(RunRequest(principal=local_principal(), input=HELLO))
        await submitter.submit(
            RunRequest(
                principal=local_principal(),
                input=HELLO,
                thread_id=first.thread_id,
                multitask_strategy="enqueue",
            )
        )
        for _ in range(5):
            claims = await asyncio.gather(
                Runner(one).claim_batch("one:1:a", 4), Runner(two).claim_batch("two:2:b", 4)
            )
            if any(claims):
                break
    assert sorted(len(claimed) for claimed in claims) == [0, 1]
    assert claims[0] + claims[1] == [first.run_id]


async def test_rate_limits_are_shared_by_processes_through_postgres(pg_url: str) -> None:
    migrate(pg_url)
    first, second = (
        RateLimiter(per_key="5/minute", per_tenant=None, storage_uri=pg_url) for _ in range(2)
    )  # as in two API processes: two storages, two connection pools
    alice = local_principal()
    decisions = [await (first if index % 2 else second).check(alice, "key-1") for index in range(7)]
    assert [decision.allowed for decision in decisions] == [True] * 5 + [False] * 2
    refused = decisions[-1]
    assert refused.scope == "key" and 1 <= refused.retry_after_seconds <= 60
    assert (await first.check(alice, "key-2")).allowed  # another key has its own window
    for limiter in (first, second):
        await limiter._limiter.storage.aclose()  # type: ignore[attr-defined]
