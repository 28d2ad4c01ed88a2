"""Alembic migrations, applied programmatically (``relaygraph migrate``, and at start-up
of every process): under a file lock beside a SQLite database, and under
``pg_advisory_lock`` on PostgreSQL (taken in ``migrations/env.py``), so concurrent
processes never race; the second one finds the schema at head and does nothing."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from store.database import StoreError, ensure_writable_dir, normalize_url, sqlite_path

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sync_url(url: str) -> str:
    """The synchronous driver URL Alembic uses for an async store URL."""
    parsed = make_url(normalize_url(url))
    if parsed.drivername == "sqlite+aiosqlite":
        parsed = parsed.set(drivername="sqlite")
    elif parsed.drivername == "postgresql+asyncpg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["sqlalchemy_url"] = sync_url(url)
    return config


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """A cross-process lock beside a SQLite database (other backends lock in env.py)."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    ensure_writable_dir(path.parent)
    with open(path.parent / ".migrate.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migration_head() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _run(url: str, action: str, revision: str) -> None:
    with _migration_lock(url):
        config = alembic_config(url)
        try:
            getattr(command, action)(config, revision)
        except Exception as exc:
            raise StoreError(f"migration ({action} to {revision!r}) failed: {exc}") from exc


def migrate(url: str, revision: str = "head") -> None:
    """Upgrade the store to ``revision`` (default: the newest).

    Raises:
        StoreError: the database cannot be reached or the migration failed.
    """
    _run(url, "upgrade", revision)


def downgrade(url: str, revision: str) -> None:
    """Downgrade the store to ``revision`` (``base`` removes every table).

    Raises:
        StoreError: the database cannot be reached or the migration failed.
    """
    _run(url, "downgrade", revision)
