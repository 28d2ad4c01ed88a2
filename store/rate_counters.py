"""Rate-limit counters in PostgreSQL, as a storage for the ``limits`` library.

``limits`` ships storages for memory, Redis/Valkey, Memcached and MongoDB, none for
PostgreSQL. With ``RELAYGRAPH_RATE_LIMIT_STORAGE_URI=postgresql+psycopg://…`` (usually the
store's own URL) every API process counts in one UNLOGGED table (migration 0012): a fixed
window per key, one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per hit, so concurrent
hits from any process are counted exactly. Importing this module registers the schemes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from limits.aio.storage import Storage

from store.database import libpq_url

_INCR = """
INSERT INTO rate_limit_counters AS c (key, count, expires_at)
VALUES (%(key)s, %(amount)s, now() + make_interval(secs => %(expiry)s))
ON CONFLICT (key) DO UPDATE SET
    count = CASE WHEN c.expires_at <= now() THEN EXCLUDED.count
                 ELSE c.count + EXCLUDED.count END,
    expires_at = CASE WHEN c.expires_at <= now() THEN EXCLUDED.expires_at
                      ELSE c.expires_at END
RETURNING count
"""
_PURGE_EVERY = 1000


class PostgresStorage(Storage):
    """Fixed-window counters shared by every process using the same database."""

    STORAGE_SCHEME = ["async+postgresql", "async+postgresql+psycopg", "async+postgres"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.conninfo = libpq_url(uri.removeprefix("async+"))
        self._pool: Any = None
        self._opening = asyncio.Lock()
        self._hits = 0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        import psycopg

        return psycopg.Error

    async def _connection_pool(self) -> Any:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    from psycopg_pool import AsyncConnectionPool

                    pool = AsyncConnectionPool(
                        self.conninfo, min_size=1, max_size=4,
                        kwargs={"autocommit": True}, open=False,
                    )  # fmt: skip
                    await pool.open()
                    self._pool = pool
        return self._pool

    async def _one(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        pool = await self._connection_pool()
        async with pool.connection() as conn:
            row = await (await conn.execute(sql, params)).fetchone()
        return None if row is None else row[0]

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        self._hits += 1
        if self._hits % _PURGE_EVERY == 0:
            await self._one(
                "WITH gone AS (DELETE FROM rate_limit_counters WHERE expires_at < now() "
                "RETURNING 1) SELECT count(*) FROM gone"
            )
        count = await self._one(_INCR, {"key": key, "amount": amount, "expiry": expiry})
        return int(count)

    async def get(self, key: str) -> int:
        count = await self._one(
            "SELECT count FROM rate_limit_counters WHERE key = %(key)s AND expires_at > now()",
            {"key": key},
        )
        return int(count or 0)

    async def get_expiry(self, key: str) -> float:
        expires = await self._one(
            "SELECT extract(epoch FROM expires_at) FROM rate_limit_counters "
            "WHERE key = %(key)s AND expires_at > now()",
            {"key": key},
        )
        return float(expires) if expires is not None else time.time()

    async def check(self) -> bool:
        try:
            return await self._one("SELECT 1") == 1
        except Exception:
            return False

    async def reset(self) -> int | None:
        return int(
            await self._one(
                "WITH gone AS (DELETE FROM rate_limit_counters RETURNING 1) "
                "SELECT count(*) FROM gone"
            )
        )

    async def clear(self, key: str) -> None:
        await self._one(
            "WITH gone AS (DELETE FROM rate_limit_counters WHERE key = %(key)s RETURNING 1) "
            "SELECT count(*) FROM gone",
            {"key": key},
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
