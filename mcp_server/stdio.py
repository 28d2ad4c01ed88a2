"""MCP over stdio, for desktop clients that start ``relaygraph mcp`` themselves.

The process acts as one principal for its whole life: the owner of the API key it was
given (checked against the store before serving), or, only when the operator says
so, the local all-roles user. While serving, stdout carries nothing but protocol: the
SDK points fd 1 at stderr for everything else.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Iterator
from io import TextIOWrapper
from types import TracebackType
from typing import IO, Any, Self, cast

import anyio
import mcp_types as types
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from identity import Principal
from identity.apikeys import ApiKeyError, verify_api_key
from identity.types import local_principal
from mcp_server.config import McpConfig
from mcp_server.jsonrpc import TOO_DEEP
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
    with _stdin_off_the_wire() as wire:
        lines = IdCheckingLines(anyio.wrap_file(_BorrowedText(wire)))
        async with stdio_server(stdin=cast(Any, lines)) as (read_stream, write_stream):
            readable = AnsweringReadStream(read_stream, write_stream, lines.verdicts)
            await server.run(readable, write_stream, server.create_initialization_options())


class _BorrowedText(TextIOWrapper):
    """UTF-8 text over a binary stream this module does not own: closing detaches."""

    def __init__(self, buffer: IO[bytes]) -> None:
        super().__init__(cast(Any, buffer), encoding="utf-8", errors="replace")

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.detach()


@contextlib.contextmanager
def _stdin_off_the_wire() -> Iterator[IO[bytes]]:
    """The protocol's stdin, read from a private duplicate while fd 0 points at the null
    device (so tool subprocesses cannot swallow protocol bytes), as the SDK does when it
    opens stdin itself. We open it because we must see each raw line (IdCheckingLines).

    The duplicate is never closed: a worker thread may still block reading it.
    """
    try:
        on_fd_0 = sys.stdin.buffer.fileno() == 0
    except (AttributeError, OSError, ValueError):
        on_fd_0 = False
    if not on_fd_0:
        yield sys.stdin.buffer  # in-process callers that replaced sys.stdin
        return
    private = os.dup(0)  # non-inheritable; above 2 while fds 0-2 are open
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(null, 0)
    finally:
        os.close(null)
    try:
        yield os.fdopen(private, "rb", closefd=False)
    finally:
        os.dup2(private, 0)


def invalid_request_id(line: str) -> str | None:
    """Why a line's JSON-RPC ``id`` is invalid (MCP: a string or an integer; null only on
    an error response), or None. The SDK would read such a request as a notification and
    never answer it, leaving the client waiting."""
    if '"id"' not in line:
        return None
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):  # too deep for json: the SDK's parser refuses it
        return None
    if not isinstance(message, dict) or "id" not in message:
        return None
    request_id = message["id"]
    if isinstance(request_id, str) or (request_id is None and "method" not in message):
        return None  # null only on an error response (MCP forbids it on requests)
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        return None
    return '"id" must be a string or an integer'


class IdCheckingLines:
    """Stdin lines for the SDK, with each request whose ``id`` is of the wrong type
    swapped for a line the SDK rejects.

    The SDK's stdio reader turns every line it is given into exactly one item on its read
    stream, in order: the message, or the exception that parsing it raised (invalid JSON
    and wrong shapes alike). So every line yielded here leaves one verdict in
    ``verdicts``: None for a line passed on as it was, the reason for a swapped one.
    AnsweringReadStream takes one verdict per item it receives, which pairs each answer
    with its own line exactly, whatever mix of malformed lines comes before it.
    """

    _REJECTED_LINE = "null\n"

    def __init__(self, lines: Any) -> None:
        self._lines = lines
        self.verdicts: deque[str | None] = deque()

    async def __aiter__(self) -> AsyncIterator[str]:
        async for line in self._lines:
            problem = invalid_request_id(line)
            self.verdicts.append(problem)
            yield line if problem is None else self._REJECTED_LINE


def unreadable_line_error(exc: Exception, problem: str | None = None) -> types.JSONRPCError:
    """The JSON-RPC 2.0 answer to a line that is no message: -32700 for invalid JSON,
    -32600 for JSON that is not a request, notification or response (id null: unknown);
    ``problem`` says what was wrong when it is known."""
    if problem is not None:
        error = types.ErrorData(code=types.INVALID_REQUEST, message=f"Invalid Request: {problem}")
        return types.JSONRPCError(jsonrpc="2.0", id=None, error=error)
    not_json = isinstance(exc, ValidationError) and any(
        error["type"] == "json_invalid" for error in exc.errors()
    )
    too_deep = isinstance(exc, ValidationError) and any(
        "recursion limit" in str(error.get("ctx", {}).get("error", "")) for error in exc.errors()
    )
    if too_deep:
        error = types.ErrorData(code=types.PARSE_ERROR, message=TOO_DEEP)
    elif not_json:
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

    ``verdicts`` (IdCheckingLines'): one entry per item of ``incoming``, taken as the item
    arrives; an entry that is not None is why that line was swapped (answered -32600 with
    that reason).

    A filter on the receiving side rather than a relay task: a valid message reaches the
    server with no extra stream or task switch, and the sender's context the SDK's stream
    carries (``last_context``) is passed through.
    """

    def __init__(
        self, incoming: Any, outgoing: Any, verdicts: deque[str | None] | None = None
    ) -> None:
        self._incoming = incoming
        self._outgoing = outgoing
        self._verdicts = verdicts

    @property
    def last_context(self) -> contextvars.Context | None:
        return getattr(self._incoming, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        while True:
            item = await self._incoming.receive()
            problem = self._verdicts.popleft() if self._verdicts else None
            if not isinstance(item, Exception):
                return item
            await self._outgoing.send(SessionMessage(unreadable_line_error(item, problem)))

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
