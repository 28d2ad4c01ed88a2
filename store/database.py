"""Async engine and sessions for the relational store.

The URL decides the backend, here and nowhere else:

- SQLite (the embedded default) runs in WAL mode with a busy timeout, and write
  transactions start with ``BEGIN IMMEDIATE`` so that two writers queue on the
  busy timeout instead of failing with "database is locked" on lock upgrade.
- PostgreSQL (``postgresql+psycopg://``, psycopg 3) gets a connection pool with
  pre-ping; writers use the default READ COMMITTED transactions, and the run queue
  serialises claims with a transaction-scoped advisory lock (``lock_queue``).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from store import sqlite_inline
from store.notify import Listener

_BEGIN_OPTION = "relaygraph_sqlite_begin"
QUEUE_LOCK_KEY = 7254130
"""``pg_advisory_xact_lock`` key held by whoever claims runs (see ``Database.lock_queue``)."""


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message says what to do."""


def normalize_url(url: str) -> str:
    """The async SQLAlchemy URL for ``url``: plain ``postgresql://`` (or ``postgres://``)
    means psycopg 3, the driver LangGraph's Postgres checkpointer uses too."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgresql+psycopg2", "postgresql+asyncpg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_postgres_url(url: str) -> bool:
    return make_url(normalize_url(url)).get_backend_name() == "postgresql"


def libpq_url(url: str) -> str:
    """``url`` as a libpq connection string for psycopg (no SQLAlchemy driver suffix)."""
    parsed = make_url(normalize_url(url)).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other backends and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def ensure_writable_dir(directory: Path) -> None:
    """Create ``directory`` if needed and check that files can be written in it.

    Raises:
        StoreError: the directory cannot be created or written.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A unique probe, so that concurrent processes do not remove each other's.
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise StoreError(
            f"data directory {directory} is not writable ({exc.strerror or exc}); "
            "set RELAYGRAPH_DATA_DIR to a writable directory"
        ) from exc


def _install_sqlite_pragmas(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Asking for WAL when the file is in WAL already would still need the write lock,
        # and fails at once (no busy wait) while another connection holds it.
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            cursor.execute("PRAGMA journal_mode=WAL")
        # The busy timeout comes with the connection (``timeout``): the in-place driver
        # keeps SQLite's own at 0 and waits on a worker thread instead.
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the write lock up front; readers run each statement on its own
        # (WAL gives every statement a consistent snapshot), saving two round trips.
        mode = connection.get_execution_options().get(_BEGIN_OPTION)
        if mode is not None:
            connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """The relational store: one async engine, read sessions and write transactions."""

    def __init__(
        self,
        url: str,
        *,
        busy_timeout_ms: int = 30_000,
        echo: bool = False,
        pool_size: int = 10,
    ) -> None:
        url = normalize_url(url)
        self.url = url
        path = sqlite_path(url)
        if path is not None:
            ensure_writable_dir(path.parent)
        backend = make_url(url).get_backend_name()
        self.is_sqlite = backend == "sqlite"
        self.is_postgres = backend == "postgresql"
        connect_args: dict[str, Any] = {}
        engine_args: dict[str, Any] = {}
        if self.is_sqlite:
            connect_args["timeout"] = busy_timeout_ms / 1000
        elif self.is_postgres:
            # Statements wait at most the busy timeout for a lock, like SQLite's.
            connect_args["options"] = f"-c lock_timeout={int(busy_timeout_ms)}"
            engine_args.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        if self.is_sqlite and make_url(url).get_driver_name() == "aiosqlite":
            # Statements run in place instead of one aiosqlite thread hop each (see
            # store.sqlite_inline); waits for another writer's lock still leave the loop.
            engine_args["module"] = sqlite_inline.dbapi()
        self.engine = create_async_engine(url, echo=echo, connect_args=connect_args, **engine_args)
        if self.is_sqlite:
            _install_sqlite_pragmas(self.engine, busy_timeout_ms)
            writer = self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        else:
            writer = self.engine
        self.listener = Listener(libpq_url(url)) if self.is_postgres else None
        """Cross-process wake-ups (PostgreSQL only; SQLite callers poll)."""
        self._write_engine = writer
        self._reader = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer = async_sessionmaker(writer, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session for reads (SQLite: no write lock taken)."""
        async with self._reader() as session:
            yield session

    def unopened_session(self) -> AsyncSession:
        """A read session as ``session()`` gives, for a caller that closes it itself (it
        connects on first use)."""
        return self._reader()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A write transaction: committed on normal exit, rolled back on any exception."""
        async with self._writer() as session, session.begin():
            yield session

    @asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction on a plain connection, for Core statements: committed on
        normal exit, rolled back on any exception. For the writes every run makes (thread
        rows, run endings, events), where an ORM session's unit of work cost more CPU than
        the SQL itself (~0.5 ms against ~0.3 ms per transaction here)."""
        async with self._write_engine.begin() as connection:
            yield connection

    async def lock_queue(self, session: AsyncSession) -> None:
        """Serialise run claims until ``session``'s transaction ends.

        SQLite's ``BEGIN IMMEDIATE`` already did; on PostgreSQL claimers take a
        transaction-scoped advisory lock, so "one running run per thread" holds across
        processes (READ COMMITTED alone would let two claimers pick two runs of one
        thread). Claims are short, so this costs one round trip, not throughput.
        """
        if self.is_postgres:
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUEUE_LOCK_KEY}
            )

    async def dispose(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        await self.engine.dispose()
