"""The LangGraph store: items under namespaces, scoped to the caller's tenant.

``index`` on a put (true, or a list of field paths) embeds those fields into the tenant's
semantic index (``memory.store``); a search with ``query`` ranks indexed items by similarity
(``score`` is the cosine), filtered by ``namespace_prefix`` and ``filter``. Items put without
``index`` are not semantically searchable (this server has no default index fields).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Response
from langgraph.store.base import SearchOp
from pydantic import BeforeValidator, Field

from api.deps import CurrentPrincipal, ServicesDep
from api.errors import ApiError
from api.schemas import MAX_OFFSET, JsonInt, json_integer
from api.schemas import RequestBody as _Body
from memory.store import RelayStore
from memory.types import MemoryStoreError
from runtime import store_items
from runtime.memory_services import has_vectors, tenant_store
from runtime.store_items import StoreItemError, StoreItemNotFound

router = APIRouter(prefix="/store", tags=["store"])

T = TypeVar("T")


# A namespace is a path of non-empty labels without ".", which joins them in URLs. The
# schema says so; runtime.store_items checks it, with messages that say what is wrong.
Label = Annotated[str, Field(json_schema_extra={"minLength": 1, "pattern": r"^[^.]+$"})]
# At most 20 labels, enforced here (runtime.store_items has no depth limit of its own).
MAX_DEPTH = 20
Namespace = Annotated[list[Label], Field(max_length=MAX_DEPTH, json_schema_extra={"minItems": 1})]
Key = Annotated[str, Field(min_length=1, max_length=1000)]


class StoreItemPut(_Body):
    namespace: Namespace
    key: Key
    value: dict[str, Any]
    index: bool | list[str] | None = None
    """Fields to index for semantic search; false: none; true or null: the default."""
    ttl: float | None = Field(default=None, gt=0, le=store_items.MAX_TTL_MINUTES)
    """Minutes until the item expires; None keeps it."""


class StoreItemDelete(_Body):
    namespace: Namespace
    key: Key


class StoreItemSearch(_Body):
    namespace_prefix: list[Label] = Field(default_factory=list, max_length=MAX_DEPTH)
    filter: dict[str, Any] | None = None
    limit: JsonInt = Field(default=10, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=MAX_OFFSET)
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreNamespaceSearch(_Body):
    prefix: list[Label] | None = None
    suffix: list[Label] | None = None
    max_depth: Annotated[int, Field(ge=1, le=20), BeforeValidator(json_integer)] | None = None
    limit: JsonInt = Field(default=100, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=MAX_OFFSET)


async def _answer(call: Awaitable[T]) -> T:
    """Await a store call, turning its errors into API errors (422, 404)."""
    try:
        return await call
    except StoreItemError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    except StoreItemNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None


@router.put("/items", status_code=204)
async def put_item(body: StoreItemPut, principal: CurrentPrincipal, svc: ServicesDep) -> Response:
    await _answer(
        store_items.put_item(
            db=svc.system.db,
            tenant=principal.tenant,
            namespace=body.namespace,
            key=body.key,
            value=body.value,
            ttl_minutes=body.ttl,
        )
    )
    if body.index or await has_vectors(svc.system, principal.tenant, body.namespace, body.key):
        index = (await _semantic(svc, principal.tenant)).vectors
        assert index is not None
        if body.index:
            fields = body.index if isinstance(body.index, list) else None
            await index.index_item(principal.tenant, body.namespace, body.key, body.value, fields)
        else:
            await index.delete_item(principal.tenant, body.namespace, body.key)
    return Response(status_code=204)


async def _semantic(svc: ServicesDep, tenant: str) -> RelayStore:
    """The tenant's store with its semantic index (503 when the index cannot open)."""
    lazy = svc.system.memory
    try:
        if lazy is None:
            raise MemoryStoreError("the semantic index is not configured on this server")
        return tenant_store(await lazy.get(), tenant)
    except MemoryStoreError as exc:
        raise ApiError(503, "unavailable", str(exc)) from None


@router.get("/items")
async def get_item(
    namespace: Annotated[
        str, Query(max_length=4200, json_schema_extra={"pattern": r"^[^.]+(\.[^.]+)*$"})
    ],
    key: Annotated[str, Query(min_length=1, max_length=1000)],
    principal: CurrentPrincipal,
    svc: ServicesDep,
    refresh_ttl: bool | None = None,
) -> dict[str, Any]:
    """``namespace`` is the labels joined with "." (``a.b`` is ``["a", "b"]``)."""
    return await _answer(
        store_items.get_item(
            db=svc.system.db,
            tenant=principal.tenant,
            namespace=namespace.split("."),
            key=key,
            refresh_ttl=refresh_ttl is not False,
        )
    )


@router.delete("/items", status_code=204)
async def delete_item(
    body: StoreItemDelete, principal: CurrentPrincipal, svc: ServicesDep
) -> Response:
    await _answer(
        store_items.delete_item(
            db=svc.system.db, tenant=principal.tenant, namespace=body.namespace, key=body.key
        )
    )
    if await has_vectors(svc.system, principal.tenant, body.namespace, body.key):
        index = (await _semantic(svc, principal.tenant)).vectors
        assert index is not None
        await index.delete_item(principal.tenant, body.namespace, body.key)
    return Response(status_code=204)


@router.post("/items/search")
async def search_items(
    body: StoreItemSearch, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, list[dict[str, Any]]]:
    if body.query:
        store = await _semantic(svc, principal.tenant)
        found = await _answer(
            store.search_op(
                SearchOp(
                    namespace_prefix=tuple(body.namespace_prefix),
                    filter=body.filter,
                    limit=body.limit,
                    offset=body.offset,
                    query=body.query,
                    refresh_ttl=body.refresh_ttl is not False,
                )
            )
        )
        return {"items": [item.dict() for item in found]}
    items = await _answer(
        store_items.search_items(
            db=svc.system.db,
            tenant=principal.tenant,
            namespace_prefix=body.namespace_prefix,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            query=body.query,
            refresh_ttl=body.refresh_ttl is not False,
        )
    )
    return {"items": items}


@router.post("/namespaces")
async def list_namespaces(
    body: StoreNamespaceSearch, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, list[list[str]]]:
    namespaces = await _answer(
        store_items.list_namespaces(
            db=svc.system.db,
            tenant=principal.tenant,
            prefix=body.prefix,
            suffix=body.suffix,
            max_depth=body.max_depth,
            limit=body.limit,
            offset=body.offset,
        )
    )
    return {"namespaces": namespaces}
