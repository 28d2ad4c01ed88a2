"""MCP over stdio, for desktop clients that start ``relaygraph mcp`` themselves.

The process acts as one principal for its whole life: the owner of the API key it was
given (checked against the store before serving), or, only when the operator says
so, the local all-roles user. While serving, stdout carries nothing but protocol: the
SDK points fd 1 at stderr for everything else.
"""

from __future__ import annotations

from typing import Any

import anyio
import mcp_types as types
from anyio.abc import ObjectSendStream
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

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
        readable_send, readable = anyio.create_memory_object_stream[SessionMessage | Exception](0)
        async with anyio.create_task_group() as group:
            group.start_soon(_answer_unreadable_lines, read_stream, readable_send, write_stream)
            await server.run(readable, write_stream, server.create_initialization_options())
            group.cancel_scope.cancel()


def unreadable_line_error(exc: Exception) -> types.JSONRPCError:
    """The JSON-RPC 2.0 answer to a line that is no message: -32700 for invalid JSON,
    -32600 for JSON that is not a request, notification or response (id null: unknown)."""
    not_json = isinstance(exc, ValidationError) and any(
        error["type"] == "json_invalid" for error in exc.errors()
    )
    if not_json:
        error = types.ErrorData(code=types.PARSE_ERROR, message="Parse error: the line is not JSON")
    else:
        error = types.ErrorData(
            code=types.INVALID_REQUEST,
            message="Invalid Request: not a JSON-RPC 2.0 request, notification or response",
        )
    return types.JSONRPCError(jsonrpc="2.0", id=None, error=error)


async def _answer_unreadable_lines(
    incoming: Any,
    forward: ObjectSendStream[SessionMessage | Exception],
    outgoing: Any,
) -> None:
    """Pass messages on to the server; answer lines the SDK could not read (it drops them
    silently, leaving a client waiting) with the JSON-RPC error the spec asks for."""
    async with forward:
        async for item in incoming:
            if isinstance(item, Exception):
                await outgoing.send(SessionMessage(unreadable_line_error(item)))
            else:
                await forward.send(item)
