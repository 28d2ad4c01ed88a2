"""The audit log for administrators: entries of the caller's tenant, and a chain check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from api.deps import CurrentPrincipal, ServicesDep, require_scope
from api.schemas import MAX_QUERY_INT

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
async def list_audit_entries(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    limit: int = Query(default=50, ge=1, le=1000),
    before: int | None = Query(
        default=None, ge=1, le=MAX_QUERY_INT, description="Entries older than this seq."
    ),
    tool: str | None = None,
    actor: str | None = None,
    payloads: bool = Query(default=False, description="Include arguments and results."),
) -> dict[str, Any]:
    """The tenant's audit entries, newest first (admin: ``audit:read``)."""
    require_scope(principal, "audit:read")
    entries = await svc.system.executor.audit.entries(
        tenant=principal.tenant,
        limit=limit,
        before=before,
        tool=tool,
        actor=actor,
        with_payloads=payloads,
    )
    return {"entries": entries}


@router.get("/verify")
async def verify_audit_chain(principal: CurrentPrincipal, svc: ServicesDep) -> dict[str, Any]:
    """Recompute the whole chain (admin). ``ok`` false lists what does not check out."""
    require_scope(principal, "audit:read")
    report = await svc.system.executor.audit.verify()
    return report.to_dict()
