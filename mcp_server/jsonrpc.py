"""What a JSON-RPC message must look like before the SDK sees it, and refusals a person
can act on.

The HTTP endpoint checks each incoming message with :func:`shape_problem` (the SDK drops
some malformed lines silently, answers others with a bare "Invalid request parameters",
and chokes on nesting its parser refuses), and :class:`ActionableParamErrors` words the
SDK's -32602 answers so they say which field was wrong and what to send instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mcp_types as types
import pydantic_core
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

PROTOCOL_VERSIONS: tuple[str, ...] = (*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)
"""Every protocol revision this server answers (an ``Mcp-Protocol-Version`` header
naming another is refused with 400)."""
TOO_DEEP = (
    "Parse error: the JSON is nested too deeply (this server reads at most about 200 "
    "levels); send flatter arguments"
)
_MAX_ERRORS = 5
_MAX_ECHO = 80


@dataclass(frozen=True)
class Problem:
    """Why a message was refused: a JSON-RPC error code, the message, and the request's
    id when it could be read (None otherwise, as JSON-RPC 2.0 asks)."""

    code: int
    message: str
    request_id: str | int | None = None

    def error(self) -> types.JSONRPCError:
        data = types.ErrorData(code=self.code, message=self.message)
        return types.JSONRPCError(jsonrpc="2.0", id=self.request_id, error=data)

    def body(self) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": self.request_id,
            "error": {"code": self.code, "message": self.message},
        }


def parse_message(raw: str | bytes) -> tuple[Any, Problem | None]:
    """The decoded message, or the -32700 problem with it. Decoded with the parser the SDK
    uses, so nesting it refuses is refused here too (and Python's own recursion limit is
    never reached: a deep document once crashed the stdio server)."""
    try:
        return pydantic_core.from_json(raw), None
    except ValueError as exc:
        reason = str(exc)
        if "recursion limit" in reason:
            message = TOO_DEEP
        else:
            message = f"Parse error: the message is not valid JSON ({reason})"
        return None, Problem(types.PARSE_ERROR, message)


def shape_problem(message: Any, *, unit: str = "POST") -> Problem | None:
    """Why a decoded message is not one JSON-RPC 2.0 message MCP accepts, or None.

    Refused (-32600): batches (MCP dropped them in 2025-06-18); anything but an object;
    a ``jsonrpc`` other than "2.0"; a non-string ``method``; a message with neither a
    method nor a result or error; ``params`` that are neither an object nor an array
    (an array reaches the SDK, whose -32602 :class:`ActionableParamErrors` words); an
    ``id`` that is not a string or an integer (MCP forbids null on requests). ``unit``
    is what carries one message on this transport.
    """
    if isinstance(message, list):
        return _invalid(
            "JSON-RPC batches (arrays) are not supported by MCP since 2025-06-18; "
            f"send each message in its own {unit}"
        )
    if not isinstance(message, dict):
        return _invalid("a message must be a JSON object")
    request_id = message.get("id")
    readable_id = (
        request_id
        if isinstance(request_id, str)
        or (isinstance(request_id, int) and not isinstance(request_id, bool))
        else None
    )
    reason: str | None = None
    if message.get("jsonrpc") != "2.0":
        reason = '"jsonrpc" must be "2.0"'
    elif "method" in message and not isinstance(message["method"], str):
        reason = '"method" must be a string'
    elif "method" not in message and "result" not in message and "error" not in message:
        reason = "a message needs a method (request or notification), a result or an error"
    elif "params" in message and not isinstance(message["params"], dict | list):
        reason = '"params" must be an object'
    elif "id" in message and readable_id is None:
        if request_id is not None or "method" in message:
            reason = '"id" must be a string or an integer (MCP requests may not use null)'
    if reason is None:
        return None
    return _invalid(reason, readable_id)


def protocol_version_problem(header: str | None) -> Problem | None:
    """Why an ``Mcp-Protocol-Version`` header is refused (400), or None (absent means the
    session's negotiated version, as the 2025 transports say)."""
    if header is None or header in PROTOCOL_VERSIONS:
        return None
    return _invalid(
        f"unsupported Mcp-Protocol-Version {echo(header)}; this server speaks "
        + ", ".join(PROTOCOL_VERSIONS)
    )


def _invalid(reason: str, request_id: str | int | None = None) -> Problem:
    return Problem(types.INVALID_REQUEST, f"Invalid Request: {reason}", request_id)


def echo(value: str) -> str:
    """``value`` as it may be quoted back: repr'd (control characters visible), short."""
    text = repr(value)
    return text if len(text) <= _MAX_ECHO else text[: _MAX_ECHO - 4] + "…'"


def describe_validation_error(exc: ValidationError) -> str:
    """Which fields were wrong and how, without echoing the values sent."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False)[:_MAX_ERRORS]:
        where = ".".join(str(part) for part in error["loc"]) or "params"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - _MAX_ERRORS
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


class ActionableParamErrors:
    """Server middleware: the SDK answers malformed params, and any request sent before
    ``initialize``, with -32602 "Invalid request parameters" and no detail (it keeps
    pydantic's text off the wire). Same code here, with the fields that were wrong (no
    values echoed) or the step that was skipped."""

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        try:
            return await call_next(ctx)
        except ValidationError as exc:
            raise MCPError(
                types.INVALID_PARAMS,
                f"Invalid params for {ctx.method}: {describe_validation_error(exc)}",
            ) from exc
        except MCPError as exc:
            error = exc.error
            bare = error.message == "Invalid request parameters" and not error.data
            if error.code != types.INVALID_PARAMS or not bare:
                raise
            # The SDK's only bare -32602 after validation: the pre-initialize gate.
            raise MCPError(
                types.INVALID_PARAMS,
                f"Invalid params: {ctx.method} was sent before the session was initialized; "
                "send initialize, then notifications/initialized, then your requests",
            ) from exc
