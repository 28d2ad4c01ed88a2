"""Prometheus metrics at ``/metrics`` (outside ``/api/v1``, where scrapers look)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ServicesDep, current_caller
from api.errors import ApiError
from runtime.metrics import refresh_from_database

router = APIRouter(tags=["meta"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, svc: ServicesDep) -> Response:
    """The default registry in Prometheus' text format; admins only unless configured public."""
    if not svc.system.settings.metrics_public:
        caller = await current_caller(request, svc)
        if "admin" not in caller.principal.roles:
            raise ApiError(403, "forbidden", "metrics are for admins of this deployment")
    await refresh_from_database(svc.system.db)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
