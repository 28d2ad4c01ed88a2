"""MCP over stdio, for desktop clients that start ``relaygraph mcp`` themselves.

The process acts as one principal for its whole life: the owner of the API key it was
given (checked against the store before serving), or, only when the operator says
so, the local all-roles user. While serving, stdout carries nothing but protocol: the
SDK points fd 1 at stderr for everything else.
"""

from __future__ import annotations

from typing import Any

from mcp.server.stdio import stdio_server

from identity import Principal
from identity.apikeys import ApiKeyError, verify_api_key
from identity.types import local_principal
from mcp_server.config import McpConfig
from mcp_server.server import McpToolService, build_server
from store import Database
from tools.executor import ToolExecutor


class McpStartupError(Exception):
    """``relaygraph mcp`` cannot start; the message says what to configure."""


async def stdio_principal(*, db: Database, api_key: str | None, local_only: bool) -> Principal:
    """The principal a stdio server acts as.

    Raises:
        McpStartupError: no key and no local-only mode, or the key is malformed,
            unknown or revoked.
    """
    if api_key:
        try:
            return await verify_api_key(db=db, key=api_key)
        except ApiKeyError as exc:
            raise McpStartupError(f"RELAYGRAPH_API_KEY is not usable: {exc.message}") from None
    if local_only:
        return local_principal()
    raise McpStartupError(
        "relaygraph mcp needs an API key: set RELAYGRAPH_API_KEY to a key from "
        "`relaygraph keys create --tenant T --user U --roles user` (in the client's env "
        "block), or set RELAYGRAPH_MCP_LOCAL_ONLY=true to act as the local all-roles user "
        "on your own machine"
    )


async def serve_stdio(executor: ToolExecutor, config: McpConfig, principal: Principal) -> None:
    """Serve until the client closes stdin."""
    service = McpToolService(executor, config)

    def fixed(_ctx: Any) -> Principal:
        return principal

    server = build_server(service, fixed)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
