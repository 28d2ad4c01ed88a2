"""Approvals of external tool calls: reviewers list, approve and reject them.

Graph interrupts are decided by resuming the thread (runs API); these are the
approvals MCP clients and other callers outside a graph wait for.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import ConfigDict, Field

from api.deps import CurrentPrincipal, Services, ServicesDep, require_scope
from api.errors import ApiError
from api.schemas import ValidText
from identity import Principal
from tools import ApprovalError

router = APIRouter(prefix="/approvals", tags=["approvals"])

_STATUS = {
    "approval_not_found": 404,
    "approval_forbidden": 403,
    "approval_expired": 409,
    "approval_decided": 409,
}


class ApprovalDecision(ValidText):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=2000, description="Why (kept in audit).")


def _api_error(exc: ApprovalError) -> ApiError:
    return ApiError(_STATUS.get(exc.code, 409), exc.code, exc.message)


@router.get("")
async def list_approvals(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    status: Literal["pending", "approved", "rejected", "used", "expired", "all"] = "pending",
    limit: int = Query(default=50, ge=1, le=500),
) -> dict[str, Any]:
    """The tenant's approvals (reviewers: ``reviews:decide``), newest first."""
    require_scope(principal, "reviews:decide")
    approvals = await svc.system.executor.approvals.list_approvals(
        principal=principal, status=None if status == "all" else status, limit=limit
    )
    return {"approvals": [approval.to_dict() for approval in approvals]}


@router.get("/{approval_id}")
async def get_approval(
    approval_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    require_scope(principal, "reviews:decide")
    try:
        approval = await svc.system.executor.approvals.get(approval_id, principal=principal)
    except ApprovalError as exc:
        raise _api_error(exc) from None
    return approval.to_dict()


@router.post("/{approval_id}/approve")
async def approve(
    approval_id: str,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    body: ApprovalDecision | None = None,
) -> dict[str, Any]:
    """Approve a pending call; the caller then repeats it with ``approval_id``."""
    return await _decide("approve", approval_id, principal, svc, body)


@router.post("/{approval_id}/reject")
async def reject(
    approval_id: str,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    body: ApprovalDecision | None = None,
) -> dict[str, Any]:
    """Reject a pending call; repeating it is refused."""
    return await _decide("reject", approval_id, principal, svc, body)


async def _decide(
    verdict: Literal["approve", "reject"],
    approval_id: str,
    principal: Principal,
    svc: Services,
    body: ApprovalDecision | None,
) -> dict[str, Any]:
    require_scope(principal, "reviews:decide")
    approvals = svc.system.executor.approvals
    note = body.note if body else None
    try:
        if verdict == "approve":
            approval = await approvals.approve(approval_id, approver=principal, note=note)
        else:
            approval = await approvals.reject(approval_id, approver=principal, reason=note)
    except ApprovalError as exc:
        raise _api_error(exc) from None
    return approval.to_dict()
