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
