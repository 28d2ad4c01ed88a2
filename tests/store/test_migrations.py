"""store/migrate.py and store/migrations: up, down, drift against the models, concurrency."""

from __future__ import annotations

import fcntl
import threading
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from store import StoreError, current_revision, downgrade, migrate, migration_head
from store.migrate import sync_url
from store.models import Base

APP_TABLES = {
    "threads",
    "runs",
    "run_events",
    "tool_calls",
    "notes",
    "api_keys",
    "assistants",
    "store_items",
}

# Differences between the models and the migrated schema that are known and tolerated.
# JSON stores Python None as the JSON text 'null', so no write can tell them apart today;
# the model should say ``nullable=True`` (see the report on store/models.py).
KNOWN_DRIFT: set[tuple[str, ...]] = set()
# The SQLite FTS5 index of document chunks (migration 0007) is a virtual table and its shadow
# tables, which SQLAlchemy models cannot declare.
KNOWN_DRIFT |= {
    ("remove_table", f"document_chunks_fts{suffix}")
    for suffix in ("", "_config", "_data", "_docsize", "_idx")
}
# Likewise the FTS5 index of memories (migration 0009).
KNOWN_DRIFT |= {
    ("remove_table", f"memories_fts{suffix}")
    for suffix in ("", "_config", "_data", "_docsize", "_idx")
}


def _url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'relaygraph.db'}"


def _tables(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_round_trip(tmp_path: Path) -> None:
    url = _url(tmp_path)

    migrate(url)
    assert APP_TABLES <= _tables(url)
    assert current_revision(url) == migration_head()

    downgrade(url, "base")
    assert _tables(url) & APP_TABLES == set()
    assert current_revision(url) is None

    migrate(url)
    assert APP_TABLES <= _tables(url)
    assert current_revision(url) == migration_head()


def test_migrating_an_up_to_date_store_changes_nothing(tmp_path: Path) -> None:
    url = _url(tmp_path)
    migrate(url)
    before = _tables(url)

    migrate(url)

    assert _tables(url) == before
    assert current_revision(url) == migration_head()


def test_unknown_revision_raises_store_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no_such_revision"):
        migrate(_url(tmp_path), "no_such_revision")


def _drift(diff: Any) -> tuple[str, ...]:
    # compare_metadata yields ("add_table", Table), ("add_index", Index), ... and, for
    # column changes, a list of ("modify_x", schema, table, column, info, old, new).
    if isinstance(diff, list):
        kind, _schema, table, column, *_ = diff[0]
        return (kind, table, column)
    kind, obj = diff[0], diff[1]
    return (kind, str(getattr(obj, "name", obj)))


def test_models_match_the_migrated_schema(tmp_path: Path) -> None:
    url = _url(tmp_path)
    migrate(url)
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()

    assert [_drift(diff) for diff in diffs if _drift(diff) not in KNOWN_DRIFT] == []


def test_migration_waits_for_the_lock(tmp_path: Path) -> None:
    url = _url(tmp_path)
    done = threading.Event()
    errors: list[BaseException] = []

    def migrator() -> None:
        try:
            migrate(url)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    with open(tmp_path / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        thread = threading.Thread(target=migrator, daemon=True)
        thread.start()
        try:
            # Without the lock an empty store migrates in well under this.
            assert not done.wait(0.5), "migrate() ran while another migrator held the lock"
            assert current_revision(url) is None
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

    assert done.wait(10)
    thread.join(10)
    assert errors == []
    assert current_revision(url) == migration_head()


def test_concurrent_migrations_do_not_fail(tmp_path: Path) -> None:
    url = _url(tmp_path)
    migrators = 6
    start = threading.Barrier(migrators, timeout=10)
    errors: list[BaseException] = []

    def migrator() -> None:
        try:
            start.wait()
            migrate(url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrator, daemon=True) for _ in range(migrators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]
    assert APP_TABLES <= _tables(url)
    assert current_revision(url) == migration_head()
