"""store/sqlite_inline.py: statements in place, waits for another writer off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store import Database, migrate, sqlite_inline
from store.models import Note


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'relaygraph.db'}"
    migrate(url)
    database = Database(url, busy_timeout_ms=10_000)
    try:
        yield database
    finally:
        await database.dispose()


def _hold_write_lock(path: Path, seconds: float, held: threading.Event) -> threading.Thread:
    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(seconds)
            other.execute("COMMIT")
        finally:
            other.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


async def test_a_writer_waits_for_another_connections_lock_without_blocking_the_loop(
    db: Database, tmp_path: Path
) -> None:
    async with db.session() as session:  # the file is in WAL mode from here on
        await session.execute(select(func.count()).select_from(Note))
    held = threading.Event()
    holder = _hold_write_lock(tmp_path / "relaygraph.db", 0.6, held)
    assert await asyncio.to_thread(held.wait, 5)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    async with db.transaction() as session:
        session.add(Note(tenant="t", owner="u", title="after the lock", body=""))
    waited = time.monotonic() - started
    ticker.cancel()
    holder.join(5)

    async with db.session() as session:
        count = (await session.execute(select(func.count()).select_from(Note))).scalar_one()
    assert count == 1
    assert waited >= 0.3  # it really waited for the other writer...
    assert ticks >= 10  # ...and the loop kept running meanwhile


async def test_a_lock_held_past_the_busy_timeout_fails_with_database_locked(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'relaygraph.db'}"
    migrate(url)
    database = Database(url, busy_timeout_ms=200)
    async with database.session() as session:  # the file is in WAL mode from here on
        await session.execute(select(func.count()).select_from(Note))
    held = threading.Event()
    holder = _hold_write_lock(tmp_path / "relaygraph.db", 1.5, held)
    try:
        assert await asyncio.to_thread(held.wait, 5)
        with pytest.raises(Exception, match="database is locked"):
            async with database.transaction() as session:
                session.add(Note(tenant="t", owner="u", title="never", body=""))
    finally:
        holder.join(5)
        await database.dispose()
    database = Database(url)
    try:
        async with database.session() as session:
            count = (await session.execute(select(func.count()).select_from(Note))).scalar_one()
        assert count == 0
    finally:
        await database.dispose()


async def test_driver_speaks_aiosqlite_api(tmp_path: Path) -> None:
    connection = await sqlite_inline.connect(str(tmp_path / "x.db"), timeout=1)
    async with connection:
        await connection.executescript("CREATE TABLE t (a INTEGER); PRAGMA journal_mode=WAL;")
        await connection.executemany("INSERT INTO t VALUES (?)", [(1,), (2,), (3,)])
        await connection.commit()
        async with connection.execute("SELECT a FROM t ORDER BY a") as cursor:
            rows = [row async for row in cursor]
        async with connection.cursor() as cursor:
            await cursor.execute("SELECT count(*) FROM t")
            (count,) = await cursor.fetchone()
        assert connection.is_alive()
    assert rows == [(1,), (2,), (3,)]
    assert count == 3
    assert not connection.is_alive()


def test_maintenance_statements_are_kept_off_the_loop() -> None:
    assert sqlite_inline.slow_statement("VACUUM")
    assert sqlite_inline.slow_statement("  pragma wal_checkpoint(TRUNCATE)")
    assert sqlite_inline.slow_statement("INSERT INTO memories_fts(memories_fts) VALUES('optimize')")
    assert not sqlite_inline.slow_statement("SELECT * FROM runs WHERE run_id = ?")
    assert not sqlite_inline.slow_statement("PRAGMA journal_mode=WAL")


async def test_statements_run_in_place_unless_offloaded(tmp_path: Path) -> None:
    connection = await sqlite_inline.connect(str(tmp_path / "x.db"), timeout=1)
    await connection.create_function("thread_name", 0, lambda: threading.current_thread().name)

    async def thread_of_statement() -> str:
        async with connection.execute("SELECT thread_name()") as cursor:
            (name,) = await cursor.fetchone()
        return str(name)

    @sqlite_inline.offloading
    async def heavy() -> str:
        return await thread_of_statement()

    async with connection:
        in_place = await thread_of_statement()
        with sqlite_inline.offloaded():
            offloaded = await thread_of_statement()
        decorated = await heavy()
        after = await thread_of_statement()
    assert in_place == threading.main_thread().name == after
    assert offloaded.startswith("sqlite-wait")
    assert decorated.startswith("sqlite-wait")
