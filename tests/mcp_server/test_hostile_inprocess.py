"""Hostile calls answered before the executor, in-process (fast): they are audited like
the executor's own refusals, hostile names are neither stored nor echoed at length, and
-32602 answers say which field was wrong (the SDK says only "Invalid request
parameters")."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ValidationError

from identity import Principal
from mcp_server import McpConfig, McpToolService, build_server, error_details
from mcp_server.jsonrpc import (
    TOO_DEEP,
    ActionableParamErrors,
    parse_message,
    protocol_version_problem,
    shape_problem,
)

ALICE = Principal.with_roles("a", "alice", ["user"])


async def test_calls_refused_before_the_executor_are_audited(system: Any) -> None:
    config = McpConfig(tools=frozenset({"notes_search"}), max_argument_bytes=1000)
    server = build_server(McpToolService(system.executor, config), lambda _ctx: ALICE)
    async with Client(server, mode="legacy") as client:
        hidden = await client.call_tool("notes_create", {"title": "t", "body": "b"})
        hostile = await client.call_tool("notes_\x00search\u202e" + "x" * 10_000, {})
        oversized = await client.call_tool("notes_search", {"query": "q" * 5000})
        served = await client.call_tool("notes_search", {"query": ""})
    assert (error_details(hidden) or {})["error"] == "unknown_tool"
    assert (error_details(hostile) or {})["error"] == "unknown_tool"
    assert len(_text(hostile)) < 1000, "a 10 kB name must not be echoed back whole"
    assert (error_details(oversized) or {})["error"] == "invalid_arguments"
    assert not served.is_error

    rows = list(reversed(await system.executor.audit.entries(tenant="a", with_payloads=True)))
    refused = [(r["tool"], r["decision"], r["status"], r["error_code"]) for r in rows[:3]]
    assert refused == [
        ("notes_create", "deny", "denied", "permission_denied"),
        ("(invalid name)", "deny", "denied", "unknown_tool"),
        ("notes_search", "deny", "denied", "invalid_arguments"),
    ]
    assert all(row["actor"] == "alice" and row["via"] == "mcp" for row in rows[:3])
    assert rows[0]["args"] == {"title": "t", "body": "b"}
    assert len(rows[1]["args"]["requested_name"]) <= 80
    assert rows[2]["args"] == {"arguments_bytes": len('{"query": ""}') + 5000}
    assert (rows[3]["tool"], rows[3]["decision"]) == ("notes_search", "allow")
    report = await system.executor.audit.verify()
    assert report.ok and report.entries == 4, report.problems


async def test_invalid_params_say_which_field_was_wrong() -> None:
    class Params(BaseModel):
        name: str
        arguments: dict[str, Any] | None = None

    async def invalid(_ctx: Any) -> Any:
        Params.model_validate({"arguments": "x" * 500})

    async def before_initialize(_ctx: Any) -> Any:
        raise MCPError(-32602, "Invalid request parameters", "")

    async def other(_ctx: Any) -> Any:
        raise MCPError(-32602, "the cursor is stale", "")

    ctx: Any = type("Ctx", (), {"method": "tools/call"})()
    middleware = ActionableParamErrors()
    with pytest.raises(MCPError) as raised:
        await middleware(ctx, invalid)
    message = raised.value.error.message
    assert raised.value.error.code == -32602
    assert "params.name" not in message  # pydantic's loc is the model's own
    assert "name: Field required" in message and "arguments: Input should be" in message
    assert "xxx" not in message, "the values sent are not echoed"
    with pytest.raises(MCPError) as raised:
        await middleware(ctx, before_initialize)
    assert "before the session was initialized" in raised.value.error.message
    assert "send initialize" in raised.value.error.message
    with pytest.raises(MCPError) as raised:
        await middleware(ctx, other)
    assert raised.value.error.message == "the cursor is stale"
    with pytest.raises(ValidationError):
        Params.model_validate({})  # the middleware did not change pydantic itself


def test_message_checks_name_the_problem() -> None:
    deep = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": ' + b"[" * 5000
    deep += b"]" * 5000 + b"}}"
    too_deep = parse_message(deep)[1]
    assert too_deep is not None and too_deep.message == TOO_DEEP
    _, problem = parse_message(b"{oops")
    assert problem is not None and problem.code == -32700 and "not valid JSON" in problem.message
    checks = {
        "batch": ([{"jsonrpc": "2.0", "id": 1, "method": "ping"}], "batches"),
        "null id": ({"jsonrpc": "2.0", "id": None, "method": "ping"}, '"id" must be'),
        "old version": ({"jsonrpc": "1.0", "id": 4, "method": "ping"}, '"jsonrpc" must be'),
    }
    for label, (sent, expected) in checks.items():
        found = shape_problem(sent)
        assert found is not None and found.code == -32600 and expected in found.message, label
    assert shape_problem({"jsonrpc": "1.0", "id": 4, "method": "ping"}).request_id == 4  # type: ignore[union-attr]
    assert (
        shape_problem({"jsonrpc": "2.0", "id": None, "error": {"code": 1, "message": "m"}}) is None
    )
    assert shape_problem({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": [1]}) is None
    unsupported = protocol_version_problem("1999-01-01")
    assert unsupported is not None and "2025-11-25" in unsupported.message
    assert protocol_version_problem(None) is None
    assert protocol_version_problem("2026-07-28") is None


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def test_a_profile_naming_unknown_tools_or_scopes_is_warned_about(
    system: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # A typo in RELAYGRAPH_MCP_TOOLS / _ALLOWED_SCOPES only made tools/list shorter.
    config = McpConfig(tools=frozenset({"notes_serch", "notes_search"}), allowed_scopes=None)
    with caplog.at_level("WARNING", logger="mcp_server.server"):
        McpToolService(system.executor, config)
        McpToolService(system.executor, McpConfig(allowed_scopes=frozenset({"notes:reed"})))
        McpToolService(system.executor, McpConfig(tools=frozenset({"notes_search"})))
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2, warnings
    assert "RELAYGRAPH_MCP_TOOLS names no registered tool notes_serch; tools: " in warnings[0]
    assert "notes_search" in warnings[0].split("tools: ")[1]
    assert "RELAYGRAPH_MCP_ALLOWED_SCOPES names no tool's scope notes:reed" in warnings[1]
