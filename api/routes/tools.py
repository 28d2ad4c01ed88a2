"""The tools a caller may use, with their input schemas and risk.

The review console validates a reviewer's edited arguments against these schemas
before it resumes a run; the gate validates them again on the server, so this list
is a convenience for clients, never the enforcement.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import CurrentPrincipal, ServicesDep
from api.errors import ApiError
from tools import ToolSpec

router = APIRouter(prefix="/tools", tags=["tools"])


def tool_dict(tool: ToolSpec) -> dict[str, Any]:
    return {
        "name": tool.name,
        "title": tool.display_title,
        "description": tool.description,
        "risk": tool.risk,
        "scope": tool.scope,
        "approval": tool.approval_label(),
        "may_need_approval": tool.may_need_approval,
        "supports_dry_run": tool.supports_dry_run,
        "idempotent": tool.idempotent,
        "open_world": tool.open_world,
        "timeout_seconds": tool.timeout_seconds,
        "input_schema": tool.input_schema(),
    }


@router.get("")
async def list_tools(principal: CurrentPrincipal, svc: ServicesDep) -> dict[str, Any]:
    """The tools the caller's scopes allow, sorted by name."""
    tools = sorted(svc.system.executor.tools_for(principal), key=lambda tool: tool.name)
    return {"tools": [tool_dict(tool) for tool in tools]}


@router.get("/{name}")
async def get_tool(name: str, principal: CurrentPrincipal, svc: ServicesDep) -> dict[str, Any]:
    """Raises: ApiError 404 for a tool that does not exist or the caller may not use."""
    for tool in svc.system.executor.tools_for(principal):
        if tool.name == name:
            return tool_dict(tool)
    raise ApiError(404, "not_found", f"there is no tool {name!r} you may use")
