"""Rollback of a run's checkpoints on PostgreSQL (``graphs.checkpointer.delete_checkpoints``,
as a cancel with rollback calls it): the channel blobs only those checkpoints named go too,
the blobs earlier checkpoints still name stay, and the thread reads as before the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from psycopg import AsyncConnection

from identity import local_principal
from runtime.runs import Runner, RunRequest, _delete_checkpoints_of_run
from runtime.settings import Settings
from runtime.system import open_system
from store.database import libpq_url

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

_ORPHANS = """
SELECT count(*) FROM checkpoint_blobs AS blob
WHERE blob.thread_id = %s AND NOT EXISTS (
    SELECT 1 FROM checkpoints AS kept
    WHERE kept.thread_id = blob.thread_id AND kept.checkpoint_ns = blob.checkpoint_ns
        AND kept.checkpoint -> 'channel_versions' ->> blob.channel = blob.version
)
"""


async def _count(url: str, sql: str, thread_id: str) -> int:
    async with await AsyncConnection.connect(libpq_url(url)) as conn:
        row = await (await conn.execute(sql, (thread_id,))).fetchone()
    assert row is not None
    return int(row[0])


def _hello(text: str) -> dict[str, Any]:
    return {"messages": [{"type": "human", "content": text}]}


async def test_rolled_back_checkpoints_leave_no_orphan_blobs(
    postgres_cluster: Any, data_dir: Path
) -> None:
    url = postgres_cluster.database_url()
    settings = Settings(data_dir=data_dir, database_url=url)
    async with open_system(settings) as system:
        runner = Runner(system)
        first = await runner.run(RunRequest(principal=local_principal(), input=_hello("one")))
        thread = first.thread_id
        config: RunnableConfig = {"configurable": {"thread_id": thread}}
        before = await system.checkpointer.aget_tuple(config)
        assert before is not None
        blobs_before = await _count(
            url, "SELECT count(*) FROM checkpoint_blobs WHERE thread_id = %s", thread
        )

        second = await runner.run(
            RunRequest(principal=local_principal(), input=_hello("two"), thread_id=thread)
        )
        assert second.status == "success"
        blobs_after_second = await _count(
            url, "SELECT count(*) FROM checkpoint_blobs WHERE thread_id = %s", thread
        )
        assert blobs_after_second > blobs_before  # the second run wrote blobs of its own
        assert await _count(url, _ORPHANS, thread) == 0

        await _delete_checkpoints_of_run(system, thread, second.run_id)

        assert await _count(url, _ORPHANS, thread) == 0
        assert (
            await _count(url, "SELECT count(*) FROM checkpoint_blobs WHERE thread_id = %s", thread)
            == blobs_before
        )
        after = await system.checkpointer.aget_tuple(config)
        assert after is not None
        assert after.checkpoint["id"] == before.checkpoint["id"]
        assert after.checkpoint["channel_values"] == before.checkpoint["channel_values"]
        assert after.checkpoint["channel_values"]["messages"][0].content == "one"
