"""Error results must reach clients built on the TypeScript SDK 1.x (Claude Desktop, Cursor,
VS Code, MCP Inspector): that client validates any ``structuredContent`` against the tool's
``outputSchema`` even when ``isError`` is true, and throws instead of returning the result
(typescript-sdk#1943). Found by tests/mcp_server/test_ts_client.py: invalid arguments and
approval refusals never reached the model. Checked here in-process with the same rule."""

from __future__ import annotations

from typing import Any

import jsonschema
from mcp import Client

from identity import Principal
from mcp_server import McpConfig, McpToolService, build_server, error_details

ALICE = Principal.with_roles("a", "alice", ["user"])


def _as_the_typescript_client_reads_it(result: Any, output_schema: dict[str, Any]) -> None:
    """What the TS SDK 1.x's ``callTool`` does with a result of a tool that declares an
    output schema: structured content, when present, must validate (error or not)."""
    if result.structured_content is not None:
        jsonschema.validate(result.structured_content, output_schema)


async def test_error_results_pass_the_typescript_clients_output_schema_check(
    system: Any,
) -> None:
    server = build_server(McpToolService(system.executor, McpConfig()), lambda _ctx: ALICE)
    async with Client(server, mode="legacy") as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        search, delete = tools["notes_search"], tools["notes_delete"]
        assert search.output_schema is not None and delete.output_schema is not None

        created = await client.call_tool("notes_create", {"title": "t", "body": "b"})
        assert not created.is_error and created.structured_content is not None
        _as_the_typescript_client_reads_it(created, tools["notes_create"].output_schema or {})

        wrong = await client.call_tool("notes_search", {"query": 12, "limit": "many"})
        assert wrong.is_error
        _as_the_typescript_client_reads_it(wrong, search.output_schema)
        assert (error_details(wrong) or {})["error"] == "invalid_arguments"

        held = await client.call_tool("notes_delete", {"note_id": created.structured_content["id"]})
        assert held.is_error
        _as_the_typescript_client_reads_it(held, delete.output_schema)
        details = error_details(held)
        assert details is not None and details["error"] == "approval_required"
        assert details["retry_with"] == {"approval_id": details["approval_id"]}
        assert details["preview"], "the dry-run preview still reaches the client"


def test_error_details_reads_only_error_results() -> None:
    import mcp_types as types

    ok = types.CallToolResult(content=[types.TextContent(type="text", text='{"a": 1}')])
    assert error_details(ok) is None
    plain = types.CallToolResult(
        content=[types.TextContent(type="text", text="boom")], is_error=True
    )
    assert error_details(plain) is None
