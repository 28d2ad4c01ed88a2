"""Response cache: exact match on (deployment, normalised messages, tools, parameters),
stored in the SQL store with a TTL.

Message ids, response metadata and other per-call noise are left out of the key, so the
same conversation asked again hits. Calls marked sensitive never read or write it; a
call can bypass it. Entries carry their tenant and user so erasure can remove them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)
from sqlalchemy import delete, select, update

from store import Database
from store.models import ProviderCacheEntry


def normalise(message: BaseMessage) -> dict[str, Any]:
    body: dict[str, Any] = {"type": message.type, "content": message.content}
    if isinstance(message, AIMessage) and message.tool_calls:
        body["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in message.tool_calls]
    if isinstance(message, ToolMessage):
        body["tool_call_id"] = message.tool_call_id
    return body


def cache_key(
    deployment: str,
    messages: Sequence[BaseMessage],
    tools: Sequence[Any] = (),
    params: dict[str, Any] | None = None,
) -> str:
    payload = {
        "deployment": deployment,
        "messages": [normalise(m) for m in messages],
        "tools": list(tools),
        "params": params or {},
    }
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """New entries are buffered and written in one transaction per ``flush_interval``
    (a write per answer would queue every call behind SQLite's one writer); lookups see
    buffered entries too."""

    def __init__(self, db: Database, ttl_seconds: float, *, flush_interval: float = 0.2) -> None:
        self.db = db
        self.ttl = timedelta(seconds=ttl_seconds)
        self.flush_interval = flush_interval
        self._pending: dict[str, ProviderCacheEntry] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._hits: dict[str, int] = {}
        """Hits on stored entries not yet added to their row (written by ``flush``)."""
        self._lookups: dict[str, list[asyncio.Future[tuple[dict[str, Any], datetime] | None]]]
        self._lookups = {}
        self._looker: asyncio.Task[None] | None = None

    async def get(self, key: str) -> AIMessage | None:
        """The cached answer, or None (missing or expired); a hit is counted.

        Lookups that arrive together (concurrent calls) are answered by one query, and hit
        counts are written with the next flush: a session and a write per call would cost
        more CPU than the rest of the router together under load."""
        now = datetime.now(UTC)
        buffered = self._pending.get(key)
        if buffered is not None:
            if buffered.expires_at <= now:
                return None
            buffered.hits += 1
            (message,) = messages_from_dict([dict(buffered.response)])
            return message if isinstance(message, AIMessage) else None
        waiter: asyncio.Future[tuple[dict[str, Any], datetime] | None]
        waiter = asyncio.get_running_loop().create_future()
        self._lookups.setdefault(key, []).append(waiter)
        if self._looker is None or self._looker.done():
            self._looker = asyncio.get_running_loop().create_task(self._look_up())
        found = await waiter
        if found is None:
            return None
        response, expires_at = found
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= now:
            return None
        self._hits[key] = self._hits.get(key, 0) + 1
        self._schedule_flush()
        (message,) = messages_from_dict([dict(response)])
        return message if isinstance(message, AIMessage) else None

    async def _look_up(self) -> None:
        await asyncio.sleep(0)  # let the lookups of calls started together join this one
        while self._lookups:
            batch, self._lookups = self._lookups, {}
            try:
                rows: dict[str, tuple[dict[str, Any], datetime]] = {}
                keys = list(batch)
                async with self.db.session() as session:
                    for start in range(0, len(keys), 500):
                        result = await session.execute(
                            select(
                                ProviderCacheEntry.key,
                                ProviderCacheEntry.response,
                                ProviderCacheEntry.expires_at,
                            ).where(ProviderCacheEntry.key.in_(keys[start : start + 500]))
                        )
                        for found_key, response, expires_at in result:
                            rows[found_key] = (dict(response), expires_at)
            except BaseException as exc:
                for waiters in batch.values():
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for found_key, waiters in batch.items():
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(rows.get(found_key))

    async def put(
        self, key: str, *, deployment: str, tenant: str, user: str | None, message: AIMessage
    ) -> None:
        now = datetime.now(UTC)
        stored = AIMessage(
            content=message.content,
            tool_calls=message.tool_calls,
            usage_metadata=message.usage_metadata,
            response_metadata={
                k: v for k, v in message.response_metadata.items() if k != "relaygraph"
            },
        )
        self._pending[key] = ProviderCacheEntry(
            key=key,
            deployment=deployment,
            tenant=tenant,
            user=user,
            response=message_to_dict(stored),
            hits=0,
            created_at=now,
            expires_at=now + self.ttl,
        )
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await self.flush()

    async def flush(self) -> None:
        """Write the buffered entries."""
        async with self._lock:
            if not self._pending and not self._hits:
                return
            batch, self._pending = self._pending, {}
            hits, self._hits = self._hits, {}
            async with self.db.transaction() as session:
                for entry in batch.values():
                    await session.merge(entry)
                for key, count in hits.items():
                    await session.execute(
                        update(ProviderCacheEntry)
                        .where(ProviderCacheEntry.key == key)
                        .values(hits=ProviderCacheEntry.hits + count)
                    )

    async def aclose(self) -> None:
        # Never cancel a flush mid-transaction: its connection would keep SQLite's write
        # lock until rolled back, and the final flush below would wait on it.
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        await self.flush()

    async def purge_expired(self) -> int:
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(ProviderCacheEntry).where(ProviderCacheEntry.expires_at <= datetime.now(UTC))
            )
        return int(getattr(result, "rowcount", 0) or 0)
