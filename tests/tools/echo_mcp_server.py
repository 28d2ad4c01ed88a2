"""A tiny third-party-like MCP server (stdio) for tests/tools/test_external.py: it
reports the idempotency key it received, in its arguments and in the request's _meta,
and how many calls this process served (one process per kept session)."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("echo")
served = {"calls": 0}


@server.tool()
def record(text: str, ctx: Context, idempotency_key: str | None = None) -> dict[str, Any]:
    """Record text once per idempotency key."""
    served["calls"] += 1
    meta = ctx.request_context.meta or {}
    return {
        "text": text,
        "argument_key": idempotency_key,
        "meta_key": meta.get("io.relaygraph/idempotency-key"),
        "calls_in_this_process": served["calls"],
    }


if __name__ == "__main__":
    server.run("stdio")
