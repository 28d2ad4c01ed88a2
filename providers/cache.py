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
from sqlalchemy import delete, update

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

    async def get(self, key: str) -> AIMessage | None:
        """The cached answer, or None (missing or expired); a hit is counted."""
        now = datetime.now(UTC)
        buffered = self._pending.get(key)
        if buffered is not None:
            if buffered.expires_at <= now:
                return None
            buffered.hits += 1
            (message,) = messages_from_dict([dict(buffered.response)])
            return message if isinstance(message, AIMessage) else None
        async with self.db.session() as session:
            entry = await session.get(ProviderCacheEntry, key)
            if entry is None or entry.expires_at <= now:
                return None
            response = dict(entry.response)
        async with self.db.transaction() as session:
            await session.execute(
                update(ProviderCacheEntry)
                .where(ProviderCacheEntry.key == key)
                .values(hits=ProviderCacheEntry.hits + 1)
            )
        (message,) = messages_from_dict([response])
        return message if isinstance(message, AIMessage) else None

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
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await self.flush()

    async def flush(self) -> None:
        """Write the buffered entries."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, {}
            async with self.db.transaction() as session:
                for entry in batch.values():
                    await session.merge(entry)

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
