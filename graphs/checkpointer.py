"""Checkpointer factory: LangGraph's own savers, chosen by configuration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver


@asynccontextmanager
async def sqlite_checkpointer(
    path: Path, *, busy_timeout_ms: int = 30_000
) -> AsyncIterator[BaseCheckpointSaver]:
    """An ``AsyncSqliteSaver`` on ``path`` in WAL mode with a busy timeout."""
    connection = await aiosqlite.connect(str(path), timeout=busy_timeout_ms / 1000)
    try:
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        await connection.execute("PRAGMA synchronous=NORMAL")
        await connection.execute("PRAGMA secure_delete=ON")
        saver = AsyncSqliteSaver(connection)
        await saver.setup()
        yield saver
    finally:
        await connection.close()


async def delete_checkpoints(
    saver: BaseCheckpointSaver, thread_id: str, checkpoint_ids: list[str]
) -> None:
    """Delete some checkpoints of a thread (rollback of a cancelled run).

    LangGraph's savers can only delete whole threads, so this speaks to the SQLite
    saver's tables directly.

    Raises:
        NotImplementedError: the saver is not the SQLite one.
    """
    if not isinstance(saver, AsyncSqliteSaver):
        raise NotImplementedError(f"rollback is not supported on {type(saver).__name__}")
    async with saver.lock:
        for table in ("writes", "checkpoints"):
            await saver.conn.executemany(
                f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id = ?",
                [(thread_id, checkpoint_id) for checkpoint_id in checkpoint_ids],
            )
        await saver.conn.commit()


async def copy_thread(saver: BaseCheckpointSaver, source: str, target: str) -> None:
    """Copy every checkpoint and pending write of ``source`` to a new thread ``target``.

    ``AsyncSqliteSaver`` has no ``copy_thread``; this copies its rows directly.

    Raises:
        NotImplementedError: the saver is not the SQLite one.
    """
    if not isinstance(saver, AsyncSqliteSaver):
        raise NotImplementedError(f"thread copy is not supported on {type(saver).__name__}")
    async with saver.lock:
        await saver.conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, "
            "checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
            "FROM checkpoints WHERE thread_id = ?",
            (target, source),
        )
        await saver.conn.execute(
            "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, "
            "idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, task_id, "
            "task_path, idx, channel, type, value FROM writes WHERE thread_id = ?",
            (target, source),
        )
        await saver.conn.commit()
