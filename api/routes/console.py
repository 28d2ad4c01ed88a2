"""The review console: a static page at ``/console`` and the few reads it needs beyond
the LangGraph-compatible API.

The page itself needs no credentials (it holds no data); every data call it makes goes
to ``/api/v1`` with the API key the reviewer typed, so it sees exactly what that key
may see. The reads here are tenant-scoped like the rest of the API:

- ``GET /api/v1/whoami``: the authenticated principal (who the console acts as).
- ``GET /api/v1/console/threads/{id}/trace``: the thread's runs, oldest first, each with its
  per-step trace rows (``nodes``: node, model alias/deployment, prompt version, tokens, cost,
  latency, tool calls with outcomes, retrieved ids with scores) and its model calls
  (provider usage rows) and tool calls (ledger rows, with arguments and approver).
- ``GET /api/v1/console/threads/{id}/preview``: dry runs of the pending proposed
  actions, as the run's requester would execute them, touching nothing.
- ``GET /api/v1/console/runs``: the tenant's runs by status, failures with their error
  (admins: ``tenant:read``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select

from api.deps import CurrentPrincipal, Services, ServicesDep, require_scope
from api.errors import ApiError
from api.schemas import MAX_OFFSET
from identity import Principal
from store.models import ProviderUsage, Run, RunEvent, ToolCall, TraceStep

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# The page loads only its own files and talks only to this origin; no inline script
# or style runs, so injected markup could not execute even if it slipped through.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
RunStatusFilter = Literal[
    "pending", "running", "success", "error", "timeout", "interrupted", "failed"
]
"""A run status, or ``failed`` for ``error`` and ``timeout`` together."""
RUN_STATUSES = tuple(name for name in get_args(RunStatusFilter) if name != "failed")

_page = APIRouter(tags=["console"], include_in_schema=False)
_api = APIRouter(tags=["console"])


@_page.get("/console")
async def console_page() -> Response:
    return FileResponse(
        CONSOLE_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS
    )


@_page.get("/console/")
async def console_slash() -> Response:
    return RedirectResponse("/console", status_code=308)


@_page.get("/console/assets/{name}")
async def console_asset(name: str) -> Response:
    """Raises: ApiError 404 for anything but the console's own files."""
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"the console has no file {name!r}")
    return FileResponse(CONSOLE_DIR / name, media_type=media_type, headers=_PAGE_HEADERS)


@_api.get("/whoami")
async def whoami(principal: CurrentPrincipal) -> dict[str, Any]:
    """The caller as the server sees it: tenant, user, roles and scopes."""
    return principal.to_dict()


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _run_row(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "graph_id": run.graph_id,
        "status": run.status,
        "stop_reason": run.stop_reason,
        "error": run.error,
        "requester": run.requester,
        "submitted_by": run.submitted_by,
        "model": run.model,
        "prompt_version": run.prompt_version,
        "attempt": run.attempt,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "ended_at": _iso(run.ended_at),
    }


def _model_call(row: ProviderUsage) -> dict[str, Any]:
    return {
        "kind": "model",
        "at": _iso(row.created_at),
        "node": row.node,
        "alias": row.alias,
        "deployment": row.deployment,
        "prompt": f"{row.prompt_name}@{row.prompt_version}" if row.prompt_name else None,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "tokens_estimated": row.tokens_estimated,
        "cost_usd": row.cost_usd,
        "latency_ms": row.latency_ms,
        "cache_hit": row.cache_hit,
        "fallback": row.fallback,
        "error": row.error,
    }


def _tool_call(row: ToolCall) -> dict[str, Any]:
    latency = (
        max(0.0, (row.completed_at - row.created_at).total_seconds() * 1000)
        if row.completed_at
        else None
    )
    return {
        "kind": "tool",
        "at": _iso(row.created_at),
        "tool": row.tool,
        "tool_call_id": row.tool_call_id,
        "args": row.args,
        "status": row.status,
        "error": row.error,
        "approved_by": row.approved_by,
        "latency_ms": latency,
    }


def _trace_step(row: TraceStep) -> dict[str, Any]:
    return {
        "kind": "node",
        "seq": row.seq,
        "step": row.step,
        "namespace": row.namespace,
        "node": row.node,
        "status": row.status,
        "error": row.error,
        "alias": row.alias,
        "deployment": row.deployment,
        "prompt": f"{row.prompt_name}@{row.prompt_version}" if row.prompt_name else None,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cost_usd": row.cost_usd,
        "latency_ms": row.latency_ms,
        "model_calls": row.model_calls,
        "tool_calls": row.tool_calls,
        "retrieved": row.retrieved,
        "started_at": _iso(row.started_at),
    }


@_api.get("/console/threads/{thread_id}/trace")
async def thread_trace(
    thread_id: str,
    principal: CurrentPrincipal,
    svc: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """The thread's latest runs, oldest first, each with its per-step trace rows
    (``nodes``; gone after the trace retention period), its model and tool calls in time
    order (``steps``), and how many events of each kind it streamed."""
    await svc.threads.get_row(principal, thread_id)  # 404 unless the caller may read it
    async with svc.system.db.session() as session:
        runs = list(
            (
                await session.execute(
                    select(Run)
                    .where(Run.thread_id == thread_id)
                    .order_by(Run.created_at.desc())
                    .limit(limit)
                )
            ).scalars()
        )
        ids = [run.run_id for run in runs]
        usage = (
            (await session.execute(select(ProviderUsage).where(ProviderUsage.run_id.in_(ids))))
            .scalars()
            .all()
            if ids
            else []
        )
        calls = (
            (await session.execute(select(ToolCall).where(ToolCall.run_id.in_(ids))))
            .scalars()
            .all()
            if ids
            else []
        )
        trace_rows = (
            (
                await session.execute(
                    select(TraceStep)
                    .where(TraceStep.run_id.in_(ids))
                    .order_by(TraceStep.run_id, TraceStep.started_at, TraceStep.seq)
                )
            )
            .scalars()
            .all()
            if ids
            else []
        )
        event_counts = (
            (
                await session.execute(
                    select(RunEvent.run_id, RunEvent.event, func.count())
                    .where(RunEvent.run_id.in_(ids))
                    .group_by(RunEvent.run_id, RunEvent.event)
                )
            ).all()
            if ids
            else []
        )
    steps: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in ids}
    for row in usage:
        if row.run_id in steps:
            steps[row.run_id].append(_model_call(row))
    for call in calls:
        if call.run_id in steps:
            steps[call.run_id].append(_tool_call(call))
    nodes: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in ids}
    for trace_row in trace_rows:
        nodes[trace_row.run_id].append(_trace_step(trace_row))
    events: dict[str, dict[str, int]] = {run_id: {} for run_id in ids}
    for run_id, event, count in event_counts:
        events[run_id][event] = int(count)
    out = []
    for run in reversed(runs):
        ordered = sorted(steps[run.run_id], key=lambda step: step["at"] or "")
        model_steps = [step for step in ordered if step["kind"] == "model"]
        out.append(
            {
                **_run_row(run),
                "steps": ordered,
                "nodes": nodes[run.run_id],
                "events": events[run.run_id],
                "totals": {
                    "model_calls": len(model_steps),
                    "tool_calls": len(ordered) - len(model_steps),
                    "input_tokens": sum(step["input_tokens"] for step in model_steps),
                    "output_tokens": sum(step["output_tokens"] for step in model_steps),
                    "cost_usd": round(sum(step["cost_usd"] for step in model_steps), 6),
                },
            }
        )
    return {"thread_id": thread_id, "runs": out}


async def _requester(svc: Services, thread_id: str, fallback: Principal) -> Principal:
    """Who the resumed run will act as: the requester of the thread's latest run."""
    async with svc.system.db.session() as session:
        last = (
            await session.execute(
                select(Run)
                .where(Run.thread_id == thread_id)
                .order_by(Run.created_at.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
    if last is None:
        return fallback
    try:
        return Principal.with_roles(last.tenant, last.requester, last.requester_roles or [])
    except ValueError:  # a role renamed since: no scopes rather than a guess
        return Principal(tenant=last.tenant, user=last.requester)


@_api.get("/console/threads/{thread_id}/preview")
async def thread_preview(
    thread_id: str, principal: CurrentPrincipal, svc: ServicesDep
) -> dict[str, Any]:
    """Dry runs of the actions awaiting a decision on this thread, keyed by interrupt id,
    one entry per action request (``null`` where the tool has no dry run)."""
    state = await svc.threads.state(principal, thread_id)
    executor = svc.system.executor
    acting_as = await _requester(svc, thread_id, principal)
    previews: dict[str, list[dict[str, Any] | None]] = {}
    for pending in state["interrupts"]:
        value = pending.get("value")
        requests = value.get("action_requests") if isinstance(value, dict) else None
        if not isinstance(requests, list):
            continue
        results: list[dict[str, Any] | None] = []
        for request in requests:
            tool = executor.registry.get(str(request.get("name"))) if request else None
            if tool is None or not tool.supports_dry_run:
                results.append(None)
                continue
            try:
                args = tool.input_model.model_validate(request.get("args") or {})
            except ValidationError as exc:
                results.append({"tool": tool.name, "invalid_arguments": str(exc)})
                continue
            results.append(await executor.preview(tool, args, acting_as))
        previews[str(pending.get("id"))] = results
    return {"thread_id": thread_id, "acting_as": acting_as.user, "previews": previews}


@_api.get("/console/runs")
async def tenant_runs(
    principal: CurrentPrincipal,
    svc: ServicesDep,
    status: RunStatusFilter | None = Query(default=None, description="A run status, or 'failed'."),
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """The tenant's runs, newest first, with counts by status (admins: ``tenant:read``).
    ``status=failed`` selects ``error`` and ``timeout`` runs.

    Raises:
        ApiError: 403 without ``tenant:read`` (an unknown status is a 422 by its schema).
    """
    require_scope(principal, "tenant:read")
    wanted: tuple[str, ...] | None = None
    if status == "failed":
        wanted = ("error", "timeout")
    elif status:
        wanted = (status,)
    statement = select(Run).where(Run.tenant == principal.tenant)
    if wanted:
        statement = statement.where(Run.status.in_(wanted))
    statement = statement.order_by(Run.created_at.desc()).offset(offset).limit(limit)
    async with svc.system.db.session() as session:
        runs = list((await session.execute(statement)).scalars())
        counts = Counter(
            {
                row_status: int(count)
                for row_status, count in (
                    await session.execute(
                        select(Run.status, func.count())
                        .where(Run.tenant == principal.tenant)
                        .group_by(Run.status)
                    )
                ).all()
            }
        )
    return {
        "runs": [_run_row(run) for run in runs],
        "counts": {name: counts.get(name, 0) for name in RUN_STATUSES},
    }


router = APIRouter()
router.include_router(_page)
router.include_router(_api, prefix="/api/v1")
