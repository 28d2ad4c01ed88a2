"""Model usage and cost: ``GET /usage``, totals grouped by tenant, user, assistant, model,
day or ``paid_by`` (``tenant``: the tenant's own provider key; ``deployment``: ours), with
what the tenant's own keys paid in every group. An admin (scope ``tenant:read``) sees the
whole tenant; anyone else only their own calls."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator

from api.deps import CurrentPrincipal, ServicesDep
from api.errors import ApiError
from providers.usage import GROUP_COLUMNS, summarize_usage

router = APIRouter(tags=["usage"])


def _iso_only(value: Any) -> Any:
    """Query dates are ISO 8601 (what the schema's date-time says), never Unix numbers."""
    if isinstance(value, str) and not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        raise ValueError("give an ISO 8601 date-time, e.g. 2026-11-25T00:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]

_GROUP = "(" + "|".join(GROUP_COLUMNS) + ")"
GROUP_BY_PATTERN = f"^ *{_GROUP} *(, *{_GROUP} *)*$"
"""What ``group_by`` takes: known columns, comma-separated (the schema says it; the handler
checks it, naming the unknown ones)."""


class UsageGroup(BaseModel):
    group: dict[str, Any]
    calls: int
    errors: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    tenant_key_calls: int
    """Calls made with the tenant's own provider key (the tenant's provider bills them)."""
    tenant_key_cost_usd: float


class UsagePublic(BaseModel):
    tenant: str
    user: str | None
    """Set when the totals are limited to one user (the caller, unless an admin asked)."""
    group_by: list[str]
    groups: list[UsageGroup]
    total_cost_usd: float
    tenant_key_cost_usd: float
    """Of the total, what the tenant's own provider keys paid."""


@router.get("/usage", response_model=UsagePublic)
async def get_usage(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    group_by: Annotated[
        str,
        Query(
            description="comma-separated: " + ", ".join(GROUP_COLUMNS),
            json_schema_extra={"pattern": GROUP_BY_PATTERN},
        ),
    ] = "model",
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    user: str | None = None,
) -> UsagePublic:
    """Raises: ApiError 422 for an unknown grouping or a naive date, 403 when a non-admin
    asks for another user's usage."""
    groups = [g.strip(" ") for g in group_by.split(",")]
    if not re.fullmatch(GROUP_BY_PATTERN, group_by):
        unknown = [g for g in groups if g not in GROUP_COLUMNS]
        raise ApiError(
            422,
            "invalid_group_by",
            f"group_by takes {', '.join(GROUP_COLUMNS)}, comma-separated; not {unknown}",
        )
    for value in (since, until):
        if value is not None and value.tzinfo is None:
            raise ApiError(422, "invalid_date", "since/until need a time zone (e.g. ...Z)")
    admin = principal.has_scope("tenant:read")
    if user is not None and user != principal.user and not admin:
        raise ApiError(403, "forbidden", "only an admin (tenant:read) sees other users' usage")
    scoped_user = user if admin else principal.user
    rows = await summarize_usage(
        svc.system.db,
        tenant=principal.tenant,
        user=scoped_user,
        group_by=groups,  # type: ignore[arg-type]
        since=since,
        until=until,
    )
    return UsagePublic(
        tenant=principal.tenant,
        user=scoped_user,
        group_by=groups,
        groups=[UsageGroup(**row.__dict__) for row in rows],
        total_cost_usd=round(sum(row.cost_usd for row in rows), 8),
        tenant_key_cost_usd=round(sum(row.tenant_key_cost_usd for row in rows), 8),
    )
