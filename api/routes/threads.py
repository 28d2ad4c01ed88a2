"""Threads, their state and history (LangGraph Server paths)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from langgraph.errors import InvalidUpdateError

from api.deps import CurrentPrincipal, ServicesDep
from api.errors import ApiError
from api.routes.runs import check_messages
from api.schemas import (
    HistoryQuery,
    StateCheckpointQuery,
    StateUpdate,
    ThreadCount,
    ThreadCreate,
    ThreadPatch,
    ThreadSearch,
)

router = APIRouter(prefix="/threads", tags=["threads"])


@router.post("")
async def create_thread(
    body: ThreadCreate, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    return await svc.threads.create(
        principal, thread_id=body.thread_id, metadata=body.metadata, if_exists=body.if_exists
    )


@router.post("/search")
async def search_threads(
    body: ThreadSearch, principal: CurrentPrincipal, svc: ServicesDep
) -> list[dict[str, Any]]:
    found = await svc.threads.search(
        principal,
        ids=body.ids,
        metadata=body.metadata,
        status=body.status,
        limit=body.limit,
        offset=body.offset,
        sort_by=body.sort_by,
        sort_order=body.sort_order,
    )
    assert isinstance(found, list)
    if body.select:
        return [{key: thread.get(key) for key in body.select} for thread in found]
    return found


@router.post("/count")
async def count_threads(body: ThreadCount, principal: CurrentPrincipal, svc: ServicesDep) -> int:
    return await svc.threads.count(
        principal, ids=body.ids, metadata=body.metadata, status=body.status
    )


@router.get("/{thread_id}")
async def get_thread(
    thread_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    return await svc.threads.get(principal, thread_id)


@router.patch("/{thread_id}")
async def patch_thread(
    thread_id: str, body: ThreadPatch, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    return await svc.threads.patch(principal, thread_id, body.metadata)


@router.delete("/{thread_id}", status_code=204)
async def delete_thread(thread_id: str, principal: CurrentPrincipal, svc: ServicesDep) -> Response:
    await svc.threads.delete(principal, thread_id)
    return Response(status_code=204)


@router.post("/{thread_id}/copy")
async def copy_thread(
    thread_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    return await svc.threads.copy(principal, thread_id)


@router.get("/{thread_id}/state")
async def get_state(
    thread_id: str, principal: CurrentPrincipal, svc: ServicesDep, subgraphs: bool = False
) -> dict[str, Any]:
    return await svc.threads.state(principal, thread_id)


@router.get("/{thread_id}/state/{checkpoint_id}")
async def get_state_at(
    thread_id: str, checkpoint_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    return await svc.threads.state(principal, thread_id, {"checkpoint_id": checkpoint_id})


@router.post("/{thread_id}/state/checkpoint")
async def post_state_at(
    thread_id: str, body: StateCheckpointQuery, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    checkpoint = body.checkpoint.model_dump() if body.checkpoint else None
    return await svc.threads.state(principal, thread_id, checkpoint)


@router.post("/{thread_id}/state")
async def update_state(
    thread_id: str, body: StateUpdate, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    checkpoint = body.checkpoint.model_dump() if body.checkpoint else None
    if body.checkpoint_id:
        checkpoint = {**(checkpoint or {}), "checkpoint_id": body.checkpoint_id}
    check_messages(body.values, "values")
    try:
        return await svc.threads.update_state(
            principal, thread_id, values=body.values, as_node=body.as_node, checkpoint=checkpoint
        )
    except (InvalidUpdateError, TypeError, NotImplementedError) as exc:
        # LangGraph's refusals of an update (an unknown node, values its channels or
        # reducers reject); runtime.threads turns ValueError and KeyError into 422 itself.
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ApiError(422, "invalid_request", f"cannot update the state: {reason}") from None


@router.post("/{thread_id}/history")
async def history(
    thread_id: str, body: HistoryQuery, principal: CurrentPrincipal, svc: ServicesDep
) -> list[dict[str, Any]]:
    before = body.before
    before_ref = (
        {"checkpoint_id": before}
        if isinstance(before, str)
        else (before.model_dump() if before else None)
    )
    return await svc.threads.history(
        principal,
        thread_id,
        limit=body.limit,
        before=before_ref,
        metadata=body.metadata,
        checkpoint=body.checkpoint.model_dump() if body.checkpoint else None,
    )


@router.get("/{thread_id}/history")
async def history_get(
    thread_id: str,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 10,
) -> list[dict[str, Any]]:
    return await svc.threads.history(principal, thread_id, limit=limit)
