"""Assistants: configurations of a graph (LangGraph Server paths)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api.deps import CurrentPrincipal, ServicesDep, require_scope
from api.errors import ApiError
from api.schemas import AssistantCreate, AssistantPatch, AssistantSearch
from graphs.assistants import AssistantNotFound
from runtime.assistants import AssistantError

router = APIRouter(prefix="/assistants", tags=["assistants"])


def _not_found(exc: AssistantNotFound) -> ApiError:
    return ApiError(404, "not_found", str(exc))


def _invalid(exc: AssistantError) -> ApiError:
    return ApiError(exc.status, exc.code, str(exc))


@router.post("/search")
async def search_assistants(
    body: AssistantSearch, principal: CurrentPrincipal, svc: ServicesDep, response: Response
) -> list[dict[str, Any]]:
    found = await svc.runner.assistants.search(
        principal.tenant,
        graph_id=body.graph_id,
        name=body.name,
        metadata=body.metadata,
        limit=body.limit + 1,
        offset=body.offset,
    )
    if len(found) > body.limit:
        # The SDKs' paginated search (JS `includePagination`) reads the next page's offset
        # here; no header means this is the last page.
        found = found[: body.limit]
        response.headers["X-Pagination-Next"] = str(body.offset + body.limit)
    if body.select:
        return [{key: item.get(key) for key in body.select} for item in found]
    return found


@router.post("/count")
async def count_assistants(
    body: AssistantSearch, principal: CurrentPrincipal, svc: ServicesDep
) -> int:
    found = await svc.runner.assistants.search(
        principal.tenant,
        graph_id=body.graph_id,
        name=body.name,
        metadata=body.metadata,
        limit=10**6,
    )
    return len(found)


@router.post("")
async def create_assistant(
    body: AssistantCreate, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    require_scope(principal, "keys:manage")
    try:
        return await svc.runner.assistants.create(
            principal.tenant,
            graph_id=body.graph_id,
            assistant_id=body.assistant_id,
            config=body.config,
            context=body.context,
            metadata=body.metadata,
            name=body.name,
            description=body.description,
            if_exists=body.if_exists,
        )
    except AssistantError as exc:
        raise _invalid(exc) from None


@router.get("/{assistant_id}")
async def get_assistant(
    assistant_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    try:
        return await svc.runner.assistants.get(principal.tenant, assistant_id)
    except AssistantNotFound as exc:
        raise _not_found(exc) from None


@router.patch("/{assistant_id}")
async def patch_assistant(
    assistant_id: str, body: AssistantPatch, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    require_scope(principal, "keys:manage")
    try:
        return await svc.runner.assistants.patch(
            principal.tenant, assistant_id, body.model_dump(exclude_none=True)
        )
    except AssistantNotFound as exc:
        raise _not_found(exc) from None
    except AssistantError as exc:
        raise _invalid(exc) from None


@router.delete("/{assistant_id}", status_code=204)
async def delete_assistant(
    assistant_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> Response:
    require_scope(principal, "keys:manage")
    try:
        await svc.runner.assistants.delete(principal.tenant, assistant_id)
    except AssistantNotFound as exc:
        raise _not_found(exc) from None
    return Response(status_code=204)


async def _graph(svc: Any, principal: Any, assistant_id: str) -> Any:
    try:
        config = await svc.runner.assistants.resolve(principal.tenant, assistant_id)
    except AssistantNotFound as exc:
        raise _not_found(exc) from None
    return svc.runner.graph(svc.system.graphs.get(config.graph_id)), config


@router.get("/{assistant_id}/graph")
async def get_assistant_graph(
    assistant_id: str, principal: CurrentPrincipal, svc: ServicesDep, xray: bool = False
) -> dict[str, Any]:
    graph, _ = await _graph(svc, principal, assistant_id)
    drawable = await graph.aget_graph(xray=xray)
    return drawable.to_json()  # type: ignore[no-any-return]


@router.get("/{assistant_id}/schemas")
async def get_assistant_schemas(
    assistant_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    graph, config = await _graph(svc, principal, assistant_id)
    return {
        "graph_id": config.graph_id,
        "input_schema": _schema(graph.get_input_jsonschema),
        "output_schema": _schema(graph.get_output_jsonschema),
        "state_schema": _schema(lambda: graph.get_input_jsonschema()),
        "config_schema": _schema(graph.get_config_jsonschema),
        "context_schema": _schema(graph.get_context_jsonschema),
    }


def _schema(produce: Any) -> Any:
    try:
        return produce()
    except Exception:  # a schema LangGraph cannot render (custom types in the state)
        return None
