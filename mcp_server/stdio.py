"""MCP over stdio, for desktop clients that start ``relaygraph mcp`` themselves.

The process acts as one principal for its whole life: the owner of the API key it was
given (checked against the store before serving), or, only when the operator says
so, the local all-roles user. While serving, stdout carries nothing but protocol: the
SDK points fd 1 at stderr for everything else.
"""

from __future__ import annotations

import contextvars
from types import TracebackType
from typing import Any, Self

import anyio
import mcp_types as types
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
        readable = AnsweringReadStream(read_stream, write_stream)
        await server.run(readable, write_stream, server.create_initialization_options())


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


class AnsweringReadStream:
    """The SDK's stdio read stream without the lines it could not read: those are
    answered with the JSON-RPC error the spec asks for (the SDK would drop them silently,
    leaving a client waiting) and skipped.

    A filter on the receiving side rather than a relay task: a valid message reaches the
    server with no extra stream or task switch, and the sender's context the SDK's stream
    carries (``last_context``) is passed through.
    """

    def __init__(self, incoming: Any, outgoing: Any) -> None:
        self._incoming = incoming
        self._outgoing = outgoing

    @property
    def last_context(self) -> contextvars.Context | None:
        return getattr(self._incoming, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item = await self._incoming.receive()
            if not isinstance(item, Exception):
                return item
            await self._outgoing.send(SessionMessage(unreadable_line_error(item)))

    async def aclose(self) -> None:
        await self._incoming.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        return None
