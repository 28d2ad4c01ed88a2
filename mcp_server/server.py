"""Our tool registry as an MCP server: per-caller ``tools/list`` and ``tools/call``.

Transport-free: :func:`build_server` takes a function that names the principal behind
each request (fixed for stdio, from the authenticated HTTP request otherwise). Every
call goes through ``tools.executor`` (gate, ledger, audit); this module only
translates between MCP and the executor and keeps the MCP-only parts: the
``approval_id`` argument, argument size limits, progress heartbeats and taint across
calls (per session; per principal for stateless requests, which have no session).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext

from identity import Principal
from mcp_server import schemas
from mcp_server.config import McpConfig
from mcp_server.jsonrpc import ActionableParamErrors, echo
from tools.audit import AuditRecord, audited_tool_name
from tools.executor import ToolExecutor
from tools.types import ToolOutcome, ToolSpec

log = logging.getLogger(__name__)

PrincipalOf = Callable[[ServerRequestContext[Any, Any]], Principal]
Progress = Callable[[float, float | None, str | None], Awaitable[None]]
MAX_REMEMBERED_SESSIONS = 10_000
IDEMPOTENCY_META_KEY = "relaygraph/idempotency_key"
"""Optional ``_meta`` key of a ``tools/call``: the same key (and principal) replays the
recorded result instead of acting twice."""


class McpToolService:
    """What the MCP server offers one principal, and how its calls reach the executor."""

    def __init__(self, executor: ToolExecutor, config: McpConfig) -> None:
        self.executor = executor
        self.config = config
        for problem in config.unknown_names(list(executor.registry)):
            # A warning, not a refusal: an attached server that is down at start-up has
            # not registered its tools yet. Silent, a typo only made tools/list shorter.
            log.warning("MCP profile: %s", problem)
        self._entries: dict[str, types.Tool] = {}
        self._tainted_connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._tainted_sessions: OrderedDict[str, None] = OrderedDict()
        self._visible: dict[tuple[frozenset[str], int], list[ToolSpec]] = {}
        self._tainted_principals: OrderedDict[tuple[str, str], float] = OrderedDict()
        """Stateless callers: (tenant, user) → when their taint lapses (monotonic)."""

    def is_tainted(self, session: Any) -> bool:
        if session is None:
            return False
        if isinstance(session, str):
            return session in self._tainted_sessions
        return session in self._tainted_connections

    def mark_tainted(self, session: Any) -> None:
        """Remember that this connection or HTTP session has read untrusted content."""
        if isinstance(session, str):
            self._tainted_sessions[session] = None
            while len(self._tainted_sessions) > MAX_REMEMBERED_SESSIONS:
                self._tainted_sessions.popitem(last=False)
        elif session is not None:
            with suppress(TypeError):  # an object that cannot be weakly referenced
                self._tainted_connections.add(session)

    def principal_tainted(self, principal: Principal) -> bool:
        """Whether a stateless call of ``principal`` counts as tainted (see
        :meth:`taint_principal`)."""
        key = (principal.tenant, principal.user)
        until = self._tainted_principals.get(key)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._tainted_principals[key]
        return False

    def taint_principal(self, principal: Principal) -> None:
        """A stateless request has no session to carry taint from one call to the next:
        the principal's stateless calls carry it instead, for
        ``McpConfig.stateless_taint_seconds`` (over-approximating: another client of the
        same person is tainted too, never the reverse)."""
        key = (principal.tenant, principal.user)
        self._tainted_principals.pop(key, None)
        self._tainted_principals[key] = time.monotonic() + self.config.stateless_taint_seconds
        while len(self._tainted_principals) > MAX_REMEMBERED_SESSIONS:
            self._tainted_principals.popitem(last=False)

    def visible_tools(self, principal: Principal) -> list[ToolSpec]:
        """Tools the principal may call here: its scopes ∩ the ``mcp`` profile's, limited
        to the profile's tool allow-list (computed once per set of scopes)."""
        key = (principal.scopes, len(self.executor.registry))
        cached = self._visible.get(key)
        if cached is not None:
            return cached
        specs = self.executor.tools_for(principal, allowed_scopes=self.config.allowed_scopes)
        if self.config.tools is not None:
            specs = [tool for tool in specs if tool.name in self.config.tools]
        if len(self._visible) < MAX_REMEMBERED_SESSIONS:
            self._visible[key] = specs
        return specs

    def may_use_any(self, principal: Principal) -> bool:
        return bool(self.visible_tools(principal))

    def entry(self, tool: ToolSpec) -> types.Tool:
        """The MCP description of ``tool`` (built once)."""
        cached = self._entries.get(tool.name)
        if cached is None:
            cached = self._entries[tool.name] = schemas.mcp_tool(tool)
        return cached

    def input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self.executor.registry.get(name)
        return self.entry(tool).input_schema if tool is not None else None

    def list_tools(self, principal: Principal) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[self.entry(t) for t in self.visible_tools(principal)])

    async def call_tool(
        self,
        principal: Principal,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        session: Any = None,
        progress: Progress | None = None,
        idempotency_key: str | None = None,
    ) -> types.CallToolResult:
        """Run one call for ``principal``. Tool, policy and approval failures come back as
        ``isError`` results the model can read; nothing here raises for them."""
        started = time.perf_counter()
        args = dict(arguments or {})
        size = len(json.dumps(args, ensure_ascii=False, default=str).encode())
        if size > self.config.max_argument_bytes:
            await self._audit_refusal(
                principal, name, "invalid_arguments", {"arguments_bytes": size}, started
            )
            return _error(
                "invalid_arguments",
                f"the arguments are {size} bytes; at most {self.config.max_argument_bytes} "
                "are accepted: send less data per call",
            )
        visible = self.visible_tools(principal)
        tool = next((spec for spec in visible if spec.name == name), None)
        if tool is None:
            hidden = self.executor.registry.get(name) is not None
            code = "permission_denied" if hidden else "unknown_tool"
            await self._audit_refusal(principal, name, code, args, started)
            known = ", ".join(sorted(spec.name for spec in visible)) or "none"
            return _error(
                "unknown_tool", f"there is no tool named {echo(name)} here; tools: {known}"
            )
        approval_id: str | None = None
        if schemas.may_need_approval(tool) and schemas.APPROVAL_ARG in args:
            raw = args.pop(schemas.APPROVAL_ARG)
            if raw is not None and not isinstance(raw, str):
                return _error("invalid_arguments", f"{schemas.APPROVAL_ARG} must be a string")
            approval_id = raw or None
        stateless = session is None
        tainted = self.config.tainted or (
            self.principal_tainted(principal) if stateless else self.is_tainted(session)
        )
        outcome = await self._execute(
            principal, tool, args, approval_id, tainted, progress, idempotency_key
        )
        if outcome.ok and not outcome.trusted:
            if stateless:
                self.taint_principal(principal)
            else:
                self.mark_tainted(session)
        return _result(outcome)

    async def _audit_refusal(
        self,
        principal: Principal,
        name: str,
        code: str,
        args: dict[str, Any],
        started: float,
    ) -> None:
        """Audit a call refused here, before the executor (a tool the caller is not
        offered, arguments over the size limit), as the executor audits its refusals.
        A name that is no valid tool name is stored as ``(invalid name)`` in the chain
        and quoted, shortened, beside it."""
        shown = audited_tool_name(name)
        payload = args if shown == name else {"requested_name": echo(name), **args}
        await self.executor.audit.append(
            AuditRecord(
                event="tool_call",
                tenant=principal.tenant,
                actor=principal.user,
                via="mcp",
                tool=shown,
                decision="deny",
                status="denied",
                error_code=code,
                latency_ms=(time.perf_counter() - started) * 1000,
                args=payload,
            )
        )

    async def _execute(
        self,
        principal: Principal,
        tool: ToolSpec,
        args: dict[str, Any],
        approval_id: str | None,
        tainted: bool,
        progress: Progress | None,
        idempotency_key: str | None,
    ) -> ToolOutcome:
        return await self.executor.call_external(
            principal,
            tool.name,
            args,
            approval_id=approval_id,
            allowed_scopes=self.config.allowed_scopes,
            tainted=tainted,
            via="mcp",
            idempotency_key=idempotency_key,
            progress=progress,
        )


def session_of(ctx: ServerRequestContext[Any, Any]) -> Any:
    """What identifies the caller's session for taint: the HTTP ``Mcp-Session-Id`` (bound
    to the credential that opened it), else the connection object (stdio, in-process).
    Stateless 2026-07-28 requests have none (None): their taint is kept per principal
    (:meth:`McpToolService.taint_principal`)."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    if headers is not None:
        session_id = headers.get("mcp-session-id")
        return session_id or None
    # The SDK keeps the connection on the session privately; it lives as long as the
    # stdio or in-process connection does.
    return getattr(ctx.session, "_connection", None)


def _text(payload: Any) -> list[types.ContentBlock]:
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return [types.TextContent(type="text", text=text)]


def _error(code: str, message: str, **extra: Any) -> types.CallToolResult:
    """An ``isError`` result: the message, then its details as one line of JSON.

    No ``structuredContent``: clients built on the TypeScript SDK 1.x (Claude Desktop,
    Cursor, VS Code, MCP Inspector) validate it against the tool's ``outputSchema`` even
    on error results and throw instead of showing the error (typescript-sdk#1943), so
    an approval id or a validation message would never reach the model. Read the
    details back with :func:`error_details`.
    """
    body = {"error": code, "message": message, **extra}
    return types.CallToolResult(
        content=_text(f"Error ({code}): {message}\n{json.dumps(body, default=str)}"),
        is_error=True,
    )


def error_details(result: types.CallToolResult) -> dict[str, Any] | None:
    """The details of an error result of this server (``error`` code, ``message``, and
    for ``approval_required`` the ``approval_id``, ``preview`` and ``retry_with``): the
    JSON on the last line of its text. None for a success or any other text."""
    if not result.is_error:
        return None
    text = "\n".join(getattr(block, "text", "") for block in result.content)
    try:
        details = json.loads(text.rstrip().rsplit("\n", 1)[-1])
    except ValueError:
        return None
    return details if isinstance(details, dict) else None


def _result(outcome: ToolOutcome) -> types.CallToolResult:
    if outcome.ok:
        output = outcome.output or {}
        return types.CallToolResult(
            content=_text(json.dumps(output, ensure_ascii=False, default=str)),
            structured_content=output,
            is_error=False,
        )
    error = outcome.error
    assert error is not None
    ticket = outcome.approval
    if error.code == "approval_required" and ticket is not None:
        # The executor's message already says who approves and how to repeat the call.
        details = json.loads(json.dumps(ticket.to_dict(), default=str))
        return _error(
            "approval_required",
            error.message,
            approval_id=ticket.approval_id,
            expires_at=details.get("expires_at"),
            preview=details.get("preview"),
            retry_with={schemas.APPROVAL_ARG: ticket.approval_id},
        )
    return _error(error.code, error.message)


def build_server(service: McpToolService, principal_of: PrincipalOf) -> Server[Any]:
    """A low-level MCP server whose lists and calls are scoped to each request's caller."""
    config = service.config

    async def on_list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return service.list_tools(principal_of(ctx))

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        principal = principal_of(ctx)
        meta = ctx.meta or {}
        token = meta.get("progress_token")
        key = meta.get(IDEMPOTENCY_META_KEY)
        progress: Progress | None = None
        if token is not None:

            async def progress(done: float, total: float | None, message: str | None) -> None:
                await ctx.session.report_progress(done, total, message)

        relay = _ProgressRelay(progress) if progress is not None else None
        call = service.call_tool(
            principal,
            params.name,
            params.arguments,
            session=session_of(ctx),
            progress=relay.report if relay is not None else None,
            idempotency_key=key if isinstance(key, str) else None,
        )
        if relay is None:
            return await call
        return await relay.run(call, config.progress_interval_seconds)

    server: Server[Any] = Server(
        config.server_name,
        version=config.server_version,
        title="relaygraph tools",
        instructions=config.instructions,
        get_tool_input_schema=service.input_schema,
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )
    server.middleware.append(ActionableParamErrors())
    return server


class _ProgressRelay:
    """Progress for one request: what the tool reports, else a heartbeat every few seconds
    so clients (which often time out after 60 s) keep waiting. Values only increase."""

    def __init__(self, send: Progress) -> None:
        self._send = send
        self._last = 0.0
        self._tool_reports = False

    async def report(self, done: float, total: float | None, message: str | None) -> None:
        self._tool_reports = True
        if done > self._last:
            self._last = done
            await self._send(done, total, message)

    async def run(
        self, call: Awaitable[types.CallToolResult], interval: float
    ) -> types.CallToolResult:
        """Await ``call`` with heartbeats; cancelling the request cancels the call."""
        task = asyncio.ensure_future(call)
        elapsed = 0.0
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=interval)
                if done:
                    return task.result()
                elapsed += interval
                if self._tool_reports:
                    continue
                self._last += 1.0
                try:
                    await self._send(self._last, None, f"still running ({elapsed:g} s)")
                except Exception:  # a closed stream must not fail the call itself
                    log.debug("progress notification not delivered", exc_info=True)
        finally:
            if not task.done():
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
