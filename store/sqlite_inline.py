"""SQLite for asyncio without a thread hop per statement.

aiosqlite runs every call on a connection's own thread: a statement through SQLAlchemy's
async engine costs three or four hops (cursor, execute, fetch, close), ~0.5 ms of wall
time and CPU on an idle machine against ~0.05 ms for the same statement run in place
(measured on this project's 2-core machines; ``benchmarks/api_throughput.py`` shows what
it means per run). A SQLite statement on a local WAL file is mostly a few dozen
microseconds of CPU, so this driver runs it on the event loop's thread and moves to a
worker thread only when it would wait:

- the connection's own busy timeout is 0, so a statement that meets another writer's
  lock fails at once with ``SQLITE_BUSY``/``SQLITE_LOCKED`` having done nothing; it is
  then run again on a worker thread with the configured busy timeout, where waiting does
  not block the loop (this is what aiosqlite would have done all along);
- maintenance statements that take long by nature (``VACUUM``, WAL checkpoints,
  ``ANALYZE``, FTS ``optimize``/``rebuild``) always run on a worker thread.

The classes speak aiosqlite's public API (what ``AsyncSqliteSaver`` and SQLAlchemy's
aiosqlite adapter use) so that both can take them; ``dbapi()`` gives SQLAlchemy's
``create_async_engine(..., module=...)`` the adapter. Written here because no maintained
library offers an in-place asyncio SQLite driver.

Work known to be heavy (erasure, retention sweeps) runs inside ``offloaded()``: every
statement of the current task then goes to a worker thread, as with aiosqlite.

A statement that is cancelled while it waits on a worker thread still finishes there;
the connection's next call waits for it first, so a connection is never used by two
threads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import re
import sqlite3
import threading
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Generator,
    Iterable,
    Iterator,
)
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, Self, TypeVar

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

T = TypeVar("T")
P = ParamSpec("P")

_WAITS = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_SLOW = re.compile(
    r"^\s*(VACUUM|ANALYZE|REINDEX|PRAGMA\s+(\w+\.)?(wal_checkpoint|optimize|integrity_check|"
    r"quick_check|incremental_vacuum))\b|'(optimize|rebuild|merge|integrity-check)'",
    re.IGNORECASE,
)
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


_offloaded: contextvars.ContextVar[bool] = contextvars.ContextVar("sqlite_offloaded", default=False)


@contextlib.contextmanager
def offloaded() -> Iterator[None]:
    """Within: this task's statements run on worker threads (heavy work that must not hold
    the event loop: bulk deletes, sweeps)."""
    token = _offloaded.set(True)
    try:
        yield
    finally:
        _offloaded.reset(token)


def offloading(fn: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate a coroutine function to run all of it ``offloaded()``."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with offloaded():
            return await fn(*args, **kwargs)

    return wrapper


def _waiting_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="sqlite-wait")
        return _pool


def slow_statement(sql: str) -> bool:
    """Whether ``sql`` is maintenance that runs long by nature (kept off the loop)."""
    return bool(_SLOW.search(sql))


class _Call(Coroutine[Any, Any, T]):
    """An awaitable that is also an async context manager (closing a cursor on exit), as
    aiosqlite's ``execute``/``cursor`` results are."""

    __slots__ = ("_coro", "_obj")

    def __init__(self, coro: Coroutine[Any, Any, T]) -> None:
        self._coro = coro

    def send(self, value: Any) -> Any:
        return self._coro.send(value)

    def throw(self, *args: Any) -> Any:
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        return self._coro.__await__()

    async def __aenter__(self) -> T:
        self._obj = await self._coro
        return self._obj

    async def __aexit__(self, *exc: object) -> None:
        if isinstance(self._obj, Cursor):
            await self._obj.close()


class Cursor:
    """aiosqlite-style cursor over a ``sqlite3.Cursor`` of an :class:`Connection`."""

    def __init__(self, connection: Connection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Self:
        args = (sql,) if parameters is None else (sql, parameters)
        await self._connection._call(self._cursor.execute, *args, slow=slow_statement(sql))
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Self:
        await self._connection._call(self._cursor.executemany, sql, parameters)
        return self

    async def executescript(self, script: str) -> Self:
        await self._connection._call(self._cursor.executescript, script)
        return self

    async def fetchone(self) -> Any:
        return await self._connection._call(self._cursor.fetchone)

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        size = self._cursor.arraysize if size is None else size
        return await self._connection._call(self._cursor.fetchmany, size)

    async def fetchall(self) -> list[Any]:
        return await self._connection._call(self._cursor.fetchall)

    async def close(self) -> None:
        await self._connection._call(self._cursor.close)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        while True:
            rows = await self.fetchmany()
            if not rows:
                return
            for row in rows:
                yield row

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class Connection:
    """aiosqlite-style connection that runs statements in place (see the module doc)."""

    def __init__(self, raw: sqlite3.Connection, busy_timeout_ms: int) -> None:
        self._raw = raw
        self.busy_timeout_ms = busy_timeout_ms
        self._elsewhere: asyncio.Future[Any] | None = None
        self._closed = False

    async def _call(self, fn: Callable[..., T], *args: Any, slow: bool = False) -> T:
        if self._elsewhere is not None and not self._elsewhere.done():
            await asyncio.wait({self._elsewhere})
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        if not slow and not _offloaded.get():
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in _WAITS:
                    raise
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(_waiting_pool(), self._waiting, fn, args)
        self._elsewhere = future
        return await future

    def _waiting(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """Run ``fn`` on a worker thread with the busy timeout on."""
        self._raw.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        try:
            return fn(*args)
        finally:
            self._raw.execute("PRAGMA busy_timeout=0")

    def cursor(self) -> _Call[Cursor]:
        return _Call(self._cursor())

    async def _cursor(self) -> Cursor:
        return Cursor(self, await self._call(self._raw.cursor))

    def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> _Call[Cursor]:
        return _Call(self._execute(sql, parameters))

    async def _execute(self, sql: str, parameters: Iterable[Any] | None) -> Cursor:
        cursor = await self._cursor()
        return await cursor.execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> _Call[Cursor]:
        return _Call(self._executemany(sql, parameters))

    async def _executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor:
        cursor = await self._cursor()
        return await cursor.executemany(sql, parameters)

    def executescript(self, script: str) -> _Call[Cursor]:
        return _Call(self._executescript(script))

    async def _executescript(self, script: str) -> Cursor:
        cursor = await self._cursor()
        return await cursor.executescript(script)

    async def commit(self) -> None:
        await self._call(self._raw.commit)

    async def rollback(self) -> None:
        await self._call(self._raw.rollback)

    async def close(self) -> None:
        if self._closed:
            return
        if self._elsewhere is not None and not self._elsewhere.done():
            await asyncio.wait({self._elsewhere})
        self._closed = True
        self._raw.close()

    def close_now(self) -> None:
        """Close without waiting (garbage collection, terminated connections)."""
        self._closed = True
        self._raw.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._raw.create_function(*args, **kwargs)

    def is_alive(self) -> bool:
        return not self._closed

    @property
    def in_transaction(self) -> bool:
        return self._raw.in_transaction

    @property
    def isolation_level(self) -> str | None:
        return self._raw.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: Any) -> None:
        self._raw.isolation_level = value

    @property
    def row_factory(self) -> Any:
        return self._raw.row_factory

    @row_factory.setter
    def row_factory(self, factory: Any) -> None:
        self._raw.row_factory = factory

    @property
    def total_changes(self) -> int:
        return self._raw.total_changes

    def __await__(self) -> Generator[Any, None, Self]:
        async def itself() -> Self:
            return self

        return itself().__await__()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def connect(database: str, *, timeout: float = 5.0, **kwargs: Any) -> _Call[Connection]:
    """Open ``database`` (as ``sqlite3.connect`` takes it); ``timeout`` seconds is how long
    a statement waits for another writer's lock (on a worker thread)."""

    async def opened() -> Connection:
        kwargs.pop("check_same_thread", None)
        raw = sqlite3.connect(database, timeout=0, check_same_thread=False, **kwargs)
        return Connection(raw, int(timeout * 1000))

    return _Call(opened())


class _AdaptedConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite adapter over :class:`Connection` (its aiosqlite-internal
    parts answered in place)."""

    __slots__ = ()
    _connection: Connection  # type: ignore[assignment]

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._connection.isolation_level = value

    def create_function(self, *args: Any, **kw: Any) -> None:
        self._connection._raw.create_function(*args, **kw)

    def rollback(self) -> None:
        if self._connection.is_alive():
            super(AsyncAdapt_aiosqlite_connection, self).rollback()

    def commit(self) -> None:
        if self._connection.is_alive():
            super(AsyncAdapt_aiosqlite_connection, self).commit()

    def _terminate_force_close(self) -> None:
        self._connection.close_now()


class _DBAPI(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self) -> None:
        module = type(sqlite3)("store.sqlite_inline.dbapi")
        for name in dir(sqlite3):
            if not name.startswith("_"):
                setattr(module, name, getattr(sqlite3, name))
        module.connect = connect  # type: ignore[attr-defined]
        module.Connection = Connection  # type: ignore[attr-defined]
        module.__version__ = "inline"  # type: ignore[attr-defined]
        super().__init__(module, sqlite3)
        self.has_stop = True  # terminate closes the connection in place

    def connect(self, *arg: Any, **kw: Any) -> _AdaptedConnection:
        kw.pop("async_creator_fn", None)
        connection: Any = await_(connect(*arg, **kw))
        return _AdaptedConnection(self, connection)


def dbapi() -> Any:
    """The DBAPI module for ``create_async_engine("sqlite+aiosqlite://…", module=dbapi())``."""
    return _DBAPI()
