"""store/database.py: SQLite pragmas, write transactions, and the data-directory check."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from store import Database, StoreError, migrate
from store.database import ensure_writable_dir, sqlite_path
from store.models import Note


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'relaygraph.db'}"
    migrate(url)
    database = Database(url, busy_timeout_ms=1234)
    try:
        yield database
    finally:
        await database.dispose()


async def _note_count(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Note))).scalar_one())


async def test_sqlite_runs_in_wal_mode_with_the_busy_timeout(db: Database) -> None:
    async with db.session() as session:
        journal_mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
        busy_timeout = (await session.execute(text("PRAGMA busy_timeout"))).scalar_one()
        foreign_keys = (await session.execute(text("PRAGMA foreign_keys"))).scalar_one()
        driver = (await (await session.connection()).get_raw_connection()).driver_connection

    assert journal_mode.lower() == "wal"
    # Statements run in place and never wait there (store.sqlite_inline): SQLite's own
    # timeout is 0, the configured one applies on the worker thread that waits instead.
    assert busy_timeout == 0
    assert driver.busy_timeout_ms == 1234
    assert foreign_keys == 1


async def test_transaction_commits_on_normal_exit(db: Database) -> None:
    async with db.transaction() as session:
        session.add(Note(tenant="t", owner="u", title="kept", body=""))

    assert await _note_count(db) == 1


async def test_failing_transaction_leaves_no_rows(db: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with db.transaction() as session:
            session.add(Note(tenant="t", owner="u", title="first", body=""))
            await session.flush()
            session.add(Note(tenant="t", owner="u", title="second", body=""))
            await session.flush()
            raise RuntimeError("boom")

    assert await _note_count(db) == 0


async def test_transaction_takes_the_write_lock_at_begin(db: Database, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "relaygraph.db", timeout=0, isolation_level=None)
    try:
        async with db.transaction() as session:
            await session.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_read_session_does_not_block_writers(db: Database, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "relaygraph.db", timeout=0, isolation_level=None)
    try:
        async with db.session() as session:
            await session.execute(select(Note))
            other.execute("BEGIN IMMEDIATE")
            other.execute(
                "INSERT INTO notes (tenant, owner, title, body, created_at) "
                "VALUES ('t', 'u', 'x', '', '2026-01-01 00:00:00')"
            )
            other.execute("COMMIT")
    finally:
        other.close()
    assert await _note_count(db) == 1


def test_data_dir_under_a_file_raises_store_error_naming_the_setting(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    url = f"sqlite+aiosqlite:///{tmp_path / 'afile' / 'sub' / 'relaygraph.db'}"

    with pytest.raises(StoreError, match="RELAYGRAPH_DATA_DIR") as raised:
        Database(url)
    assert str(tmp_path / "afile" / "sub") in str(raised.value)

    with pytest.raises(StoreError, match="RELAYGRAPH_DATA_DIR"):
        migrate(url)


def test_writability_check_leaves_no_probe_behind(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "data"

    ensure_writable_dir(directory)

    assert directory.is_dir()
    assert list(directory.iterdir()) == []


def test_concurrent_writability_checks_do_not_interfere(tmp_path: Path) -> None:
    checkers, rounds = 8, 100
    start = threading.Barrier(checkers, timeout=10)
    errors: list[BaseException] = []

    def checker() -> None:
        try:
            start.wait()
            for _ in range(rounds):
                ensure_writable_dir(tmp_path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=checker, daemon=True) for _ in range(checkers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite+aiosqlite:////srv/data/relaygraph.db", Path("/srv/data/relaygraph.db")),
        ("sqlite+aiosqlite://", None),
        ("sqlite+aiosqlite:///:memory:", None),
        ("postgresql+asyncpg://user:pw@127.0.0.1/relaygraph", None),
    ],
)
def test_sqlite_path(url: str, expected: Path | None) -> None:
    assert sqlite_path(url) == expected
