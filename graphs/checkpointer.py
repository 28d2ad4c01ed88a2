"""Checkpointer factory: LangGraph's own savers, chosen by URL (``open_checkpointer``).

``sqlite:///path`` opens ``AsyncSqliteSaver`` (the embedded default);
``postgresql+psycopg://…`` opens ``AsyncPostgresSaver`` on a psycopg 3 pool, its tables
created once under an advisory lock so that workers starting together do not race.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import aiosqlite
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from sqlalchemy.engine import make_url

from store import sqlite_inline
from store.database import is_postgres_url, libpq_url

if TYPE_CHECKING:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

_SETUP_LOCK_KEY = 7254131


class _Unlocked:
    """An ``async with`` that does not exclude anyone."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


@asynccontextmanager
async def open_checkpointer(
    url: str, *, busy_timeout_ms: int = 30_000, pool_size: int = 10
) -> AsyncIterator[BaseCheckpointSaver]:
    """The saver for ``url``: ``sqlite:///file`` or a PostgreSQL URL.

    Raises:
        ValueError: the URL names another backend.
    """
    if is_postgres_url(url):
        async with postgres_checkpointer(url, pool_size=pool_size) as saver:
            yield saver
        return
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        raise ValueError(
            f"checkpoints need a SQLite file or PostgreSQL URL, not {parsed.drivername!r}; "
            "set RELAYGRAPH_CHECKPOINT_URL to postgresql+psycopg://… or leave it unset"
        )
    async with sqlite_checkpointer(Path(parsed.database), busy_timeout_ms=busy_timeout_ms) as saver:
        yield saver


@asynccontextmanager
async def postgres_checkpointer(
    url: str, *, pool_size: int = 10
) -> AsyncIterator[AsyncPostgresSaver]:
    """An ``AsyncPostgresSaver`` on a connection pool (the settings LangGraph requires:
    autocommit, no prepared statements, dict rows)."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg import AsyncConnection
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    conninfo = libpq_url(url)
    kwargs: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo, min_size=1, max_size=pool_size, kwargs=kwargs, open=False
    )
    await pool.open()
    try:
        saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
        # Its lock guards one shared connection; with a pool each cursor has its own, and
        # the lock would serialise every checkpoint read and write of the process.
        saver.lock = _Unlocked()  # type: ignore[assignment]
        async with await AsyncConnection.connect(conninfo, autocommit=True) as lock_conn:
            await lock_conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK_KEY,))
            try:
                await saver.setup()
            finally:
                await lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))
        yield saver
    finally:
        await pool.close()


@asynccontextmanager
async def sqlite_checkpointer(
    path: Path, *, busy_timeout_ms: int = 30_000
) -> AsyncIterator[BaseCheckpointSaver]:
    """An ``AsyncSqliteSaver`` on ``path`` in WAL mode with a busy timeout."""
    # Statements run in place rather than one aiosqlite thread hop each; a wait for another
    # writer's lock (up to the busy timeout) still happens off the loop (store.sqlite_inline).
    connection = await sqlite_inline.connect(str(path), timeout=busy_timeout_ms / 1000)
    try:
        await connection.execute("PRAGMA journal_mode=WAL")
        await connection.execute("PRAGMA synchronous=NORMAL")
        await connection.execute("PRAGMA secure_delete=ON")
        saver = AsyncSqliteSaver(cast(aiosqlite.Connection, connection))
        await saver.setup()
        yield saver
    finally:
        await connection.close()


async def delete_checkpoints(
    saver: BaseCheckpointSaver, thread_id: str, checkpoint_ids: list[str]
) -> None:
    """Delete some checkpoints of a thread (rollback of a cancelled run).

    LangGraph's savers can only delete whole threads, so this speaks to the savers' tables
    directly. On PostgreSQL, channel values live apart from checkpoints, in
    ``checkpoint_blobs`` rows keyed by (thread, namespace, channel, version) and shared by
    every checkpoint whose ``channel_versions`` names that version; the blobs the deleted
    checkpoints named and no remaining checkpoint of the thread names go with them, in the
    same transaction. Only those candidates are considered, never "every unreferenced blob
    of the thread": the saver writes a checkpoint's new blobs before its row, each in its
    own autocommit statement, so a concurrent writer's fresh blobs are briefly unreferenced
    (their versions carry a random suffix, so they never collide with the candidates).

    Raises:
        NotImplementedError: the saver is neither the SQLite nor the PostgreSQL one.
    """
    if _is_postgres_saver(saver):
        async with saver.lock, _pg_connection(saver) as conn, conn.transaction():  # type: ignore[attr-defined]
            params = {"thread_id": thread_id, "ids": checkpoint_ids}
            await conn.execute(_PG_DELETE_WRITES, params)
            await conn.execute(_PG_DELETE_CHECKPOINTS_AND_BLOBS, params)
        return
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
        NotImplementedError: the saver is neither the SQLite nor the PostgreSQL one.
    """
    if _is_postgres_saver(saver):
        async with saver._cursor(pipeline=True) as cur:  # type: ignore[attr-defined]
            for statement in _PG_COPY_THREAD:
                await cur.execute(statement, (target, source))
        return
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


_PG_COPY_THREAD = (
    "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, "
    "type, checkpoint, metadata) SELECT %s, checkpoint_ns, checkpoint_id, "
    "parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints WHERE thread_id = %s",
    "INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob) "
    "SELECT %s, checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs "
    "WHERE thread_id = %s",
    "INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, "
    "task_path, idx, channel, type, blob) SELECT %s, checkpoint_ns, checkpoint_id, task_id, "
    "task_path, idx, channel, type, blob FROM checkpoint_writes WHERE thread_id = %s",
)


_PG_DELETE_WRITES = (
    "DELETE FROM checkpoint_writes WHERE thread_id = %(thread_id)s AND checkpoint_id = ANY(%(ids)s)"
)
# The sub-statements of a WITH see one snapshot, so the blob delete still sees the doomed
# checkpoints in ``checkpoints``: they are excluded by id.
_PG_DELETE_CHECKPOINTS_AND_BLOBS = """
WITH doomed AS (
    DELETE FROM checkpoints
    WHERE thread_id = %(thread_id)s AND checkpoint_id = ANY(%(ids)s)
    RETURNING checkpoint_ns, checkpoint
), named AS (
    SELECT DISTINCT doomed.checkpoint_ns, version.key AS channel, version.value AS version
    FROM doomed CROSS JOIN LATERAL jsonb_each_text(doomed.checkpoint -> 'channel_versions')
        AS version
)
DELETE FROM checkpoint_blobs AS blob
USING named
WHERE blob.thread_id = %(thread_id)s
    AND blob.checkpoint_ns = named.checkpoint_ns
    AND blob.channel = named.channel
    AND blob.version = named.version
    AND NOT EXISTS (
        SELECT 1 FROM checkpoints AS kept
        WHERE kept.thread_id = blob.thread_id
            AND kept.checkpoint_ns = blob.checkpoint_ns
            AND NOT (kept.checkpoint_id = ANY(%(ids)s))
            AND kept.checkpoint -> 'channel_versions' ->> blob.channel = blob.version
    )
"""


@asynccontextmanager
async def _pg_connection(saver: Any) -> AsyncIterator[Any]:
    """An ``AsyncPostgresSaver``'s connection, or one borrowed from its pool."""
    from psycopg import AsyncConnection

    if isinstance(saver.conn, AsyncConnection):
        yield saver.conn
    else:
        async with saver.conn.connection() as conn:
            yield conn


_PG_CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes")


async def vacuum_checkpoints(
    saver: BaseCheckpointSaver, *, busy_timeout_ms: int = 30_000
) -> tuple[list[str], list[str]]:
    """Rewrite the PostgreSQL saver's tables with ``VACUUM (FULL, ANALYZE)`` so that deleted
    checkpoints leave no old row versions in their files (after an erasure). Waits at most
    ``busy_timeout_ms`` for each table's lock. Other savers: nothing to do (the SQLite
    file is compacted by the eraser itself).

    Returns (tables rewritten, tables skipped because their lock was not granted).
    """
    if not _is_postgres_saver(saver):
        return [], []
    from psycopg import errors  # only with the postgres extra installed

    done: list[str] = []
    skipped: list[str] = []
    async with _pg_connection(saver) as conn:
        if not conn.autocommit:  # VACUUM cannot run inside a transaction block
            return [], list(_PG_CHECKPOINT_TABLES)
        await conn.execute(f"SET lock_timeout = {int(busy_timeout_ms)}")
        try:
            for table in _PG_CHECKPOINT_TABLES:
                try:
                    await conn.execute(f"VACUUM (FULL, ANALYZE) {table}")
                except errors.LockNotAvailable:
                    skipped.append(table)
                else:
                    done.append(table)
        finally:
            await conn.execute("RESET lock_timeout")
    return done, skipped


def _is_postgres_saver(saver: BaseCheckpointSaver) -> bool:
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    except ImportError:  # the optional `postgres` extra is not installed
        return False
    return isinstance(saver, AsyncPostgresSaver)
