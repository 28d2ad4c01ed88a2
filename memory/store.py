"""A LangGraph ``BaseStore`` over SQL items with a vector index beside them.

Items (JSON documents under namespace paths, per tenant, with TTLs) live in SQL; the item
operations themselves come from an ``ItemBackend`` the composition root passes in
(``runtime.store_items`` has exactly these functions; ``memory`` may not import ``runtime``).
Semantic search is this module's part: a put with ``index`` (true, or a list of field paths)
embeds the text at those paths and stores the vectors in Chroma under opaque ids in the
tenant's ``store`` partition; ``store_item_vectors`` maps ids back to (namespace, key, field).
Chroma never sees the text or the namespace.

One ``RelayStore`` is bound to one tenant (graphs get the store of the run's tenant). Puts
through it are indexed unless ``index=False`` (None indexes the whole value, like a
LangGraph store configured with an index).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    get_text_at_path,
)
from sqlalchemy import delete, select

from memory.embeddings import Embedder
from memory.types import Scope
from memory.vectors import VectorIndex
from store import Database
from store.models import StoreItemVector, utcnow

STORE_NAMESPACE = "store"
SEPARATOR = "."
WHOLE_VALUE = "$"


class ItemBackend(Protocol):
    """The SQL item operations (``runtime.store_items`` provides them)."""

    async def put_item(
        self,
        *,
        db: Database,
        tenant: str,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        ttl_minutes: float | None = None,
    ) -> None: ...

    async def get_item(
        self,
        *,
        db: Database,
        tenant: str,
        namespace: Sequence[str],
        key: str,
        refresh_ttl: bool = True,
    ) -> dict[str, Any]: ...

    async def delete_item(
        self, *, db: Database, tenant: str, namespace: Sequence[str], key: str
    ) -> None: ...

    async def search_items(
        self,
        *,
        db: Database,
        tenant: str,
        namespace_prefix: Sequence[str] = (),
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        query: str | None = None,
        refresh_ttl: bool = True,
    ) -> list[dict[str, Any]]: ...

    async def list_namespaces(
        self,
        *,
        db: Database,
        tenant: str,
        prefix: Sequence[str] | None = None,
        suffix: Sequence[str] | None = None,
        max_depth: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[list[str]]: ...


def _texts(value: Mapping[str, Any], fields: Sequence[str]) -> list[tuple[str, str]]:
    """(field, text) pairs to embed; ``$`` is the whole value as JSON."""
    out: list[tuple[str, str]] = []
    for field in fields:
        if field == WHOLE_VALUE:
            out.append((field, json.dumps(value, ensure_ascii=False, sort_keys=True)))
            continue
        for position, text in enumerate(get_text_at_path(dict(value), field)):
            if text.strip():
                out.append((f"{field}#{position}" if position else field, text))
    return out


class StoreIndex:
    """Vectors of store items, per tenant partition."""

    def __init__(self, db: Database, index: VectorIndex, embedder: Embedder) -> None:
        self.db = db
        self.index = index
        self.embedder = embedder

    async def index_item(
        self,
        tenant: str,
        namespace: Sequence[str],
        key: str,
        value: Mapping[str, Any],
        fields: Sequence[str] | None,
    ) -> int:
        """Replace the item's vectors with those of ``fields`` (None: the whole value)."""
        await self.delete_item(tenant, namespace, key)
        pairs = _texts(value, list(fields) if fields else [WHOLE_VALUE])
        if not pairs:
            return 0
        vectors = await self.embedder.aembed([text for _, text in pairs])
        ids = ["sv_" + secrets.token_hex(12) for _ in pairs]
        path = SEPARATOR.join(namespace)
        async with self.db.transaction() as session:
            for vector_id, (field, _) in zip(ids, pairs, strict=True):
                session.add(
                    StoreItemVector(
                        vector_id=vector_id,
                        tenant=tenant,
                        namespace=path,
                        key=key,
                        field=field[:256],
                        created_at=utcnow(),
                    )
                )
        await asyncio.to_thread(self.index.add, Scope(tenant), ids, vectors)
        return len(ids)

    async def delete_item(self, tenant: str, namespace: Sequence[str], key: str) -> None:
        path = SEPARATOR.join(namespace)
        condition = (
            StoreItemVector.tenant == tenant,
            StoreItemVector.namespace == path,
            StoreItemVector.key == key,
        )
        async with self.db.transaction() as session:
            ids = list(
                (
                    await session.execute(select(StoreItemVector.vector_id).where(*condition))
                ).scalars()
            )
            if ids:
                await session.execute(delete(StoreItemVector).where(*condition))
        if ids:
            await asyncio.to_thread(self.index.delete, Scope(tenant), ids)

    async def search(
        self, tenant: str, query: str, *, prefix: Sequence[str] = (), candidates: int = 100
    ) -> list[tuple[list[str], str, float]]:
        """(namespace, key, best cosine) of the tenant's indexed items under ``prefix``."""
        vector = await self.embedder.aembed_query(query)
        path = SEPARATOR.join(prefix)
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(
                        StoreItemVector.vector_id, StoreItemVector.namespace, StoreItemVector.key
                    ).where(StoreItemVector.tenant == tenant)
                )
            ).all()
        owners = {
            vector_id: (namespace, key)
            for vector_id, namespace, key in rows
            if not path or namespace == path or namespace.startswith(path + SEPARATOR)
        }
        if not owners:
            return []
        hits = await asyncio.to_thread(
            self.index.query, Scope(tenant), vector, min(candidates, len(owners)), ids=set(owners)
        )
        best: dict[tuple[str, str], float] = {}
        for hit in hits:
            owner = owners[hit.id]
            best[owner] = max(best.get(owner, -1.0), hit.score)
        ranked = sorted(best.items(), key=lambda item: -item[1])
        return [(namespace.split(SEPARATOR), key, score) for (namespace, key), score in ranked]


def _matches(value: Mapping[str, Any], wanted: Mapping[str, Any] | None) -> bool:
    return all(value.get(name) == expected for name, expected in (wanted or {}).items())


class RelayStore(BaseStore):
    """LangGraph's store interface for one tenant: SQL items, semantic search via Chroma."""

    supports_ttl = True

    def __init__(
        self, *, db: Database, tenant: str, backend: ItemBackend, index: StoreIndex | None
    ) -> None:
        self.db = db
        self.tenant = tenant
        self.backend = backend
        self.vectors = index

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Synchronous ``batch`` is not offered: relaygraph runs graphs asynchronously."""
        raise NotImplementedError("RelayStore is async: use abatch (graphs run with ainvoke)")

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                results.append(await self._get(op))
            elif isinstance(op, PutOp):
                await self._put(op)
                results.append(None)
            elif isinstance(op, SearchOp):
                results.append(await self.search_op(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(await self._list(op))
            else:
                raise ValueError(f"unknown store operation {type(op).__name__}")
        return results

    async def _get(self, op: GetOp) -> Item | None:
        from contextlib import suppress

        with suppress(LookupError):
            data = await self.backend.get_item(
                db=self.db,
                tenant=self.tenant,
                namespace=op.namespace,
                key=op.key,
                refresh_ttl=op.refresh_ttl,
            )
            return Item(
                value=data["value"],
                key=data["key"],
                namespace=tuple(data["namespace"]),
                created_at=data["created_at"],
                updated_at=data["updated_at"],
            )
        return None

    async def _put(self, op: PutOp) -> None:
        if op.value is None:
            await self.backend.delete_item(
                db=self.db, tenant=self.tenant, namespace=op.namespace, key=op.key
            )
            if self.vectors is not None:
                await self.vectors.delete_item(self.tenant, op.namespace, op.key)
            return
        ttl = op.ttl if isinstance(op.ttl, int | float) else None
        await self.backend.put_item(
            db=self.db,
            tenant=self.tenant,
            namespace=op.namespace,
            key=op.key,
            value=op.value,
            ttl_minutes=ttl,
        )
        if self.vectors is None:
            return
        if op.index is False:
            await self.vectors.delete_item(self.tenant, op.namespace, op.key)
        else:  # None: the default, the whole value; a list: those field paths
            fields = list(op.index) if op.index else None
            await self.vectors.index_item(self.tenant, op.namespace, op.key, op.value, fields)

    async def search_op(self, op: SearchOp) -> list[SearchItem]:
        """A search; with ``query``, ranked by similarity over indexed items (each ``score``
        the best cosine of its fields), else the backend's newest-first listing."""
        if not op.query:
            rows = await self.backend.search_items(
                db=self.db,
                tenant=self.tenant,
                namespace_prefix=op.namespace_prefix,
                filter=op.filter,
                limit=op.limit,
                offset=op.offset,
                refresh_ttl=op.refresh_ttl,
            )
            return [_search_item(row, None) for row in rows]
        if self.vectors is None:
            raise ValueError("semantic search needs the vector index, which is not configured")
        ranked = await self.vectors.search(self.tenant, op.query, prefix=op.namespace_prefix)
        found: list[SearchItem] = []
        skipped = 0
        for namespace, key, score in ranked:
            try:
                row = await self.backend.get_item(
                    db=self.db,
                    tenant=self.tenant,
                    namespace=namespace,
                    key=key,
                    refresh_ttl=op.refresh_ttl,
                )
            except LookupError:
                continue
            if not _matches(row["value"], op.filter):
                continue
            if skipped < op.offset:
                skipped += 1
                continue
            found.append(_search_item(row, score))
            if len(found) == op.limit:
                break
        return found

    async def _list(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        prefix = suffix = None
        for condition in op.match_conditions or ():
            if condition.match_type == "prefix":
                prefix = list(condition.path)
            else:
                suffix = list(condition.path)
        rows = await self.backend.list_namespaces(
            db=self.db,
            tenant=self.tenant,
            prefix=prefix,
            suffix=suffix,
            max_depth=op.max_depth,
            limit=op.limit,
            offset=op.offset,
        )
        return [tuple(row) for row in rows]


def _search_item(row: Mapping[str, Any], score: float | None) -> SearchItem:
    created: datetime = row["created_at"]
    return SearchItem(
        namespace=tuple(row["namespace"]),
        key=row["key"],
        value=row["value"],
        created_at=created,
        updated_at=row["updated_at"],
        score=score,
    )
