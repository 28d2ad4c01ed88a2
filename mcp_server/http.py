"""Streamable HTTP: Origin check, bearer authentication, Protected Resource Metadata.

The endpoint is an OAuth 2.1 resource server (RFC 9728 metadata, RFC 6750 challenges).
Tokens are our API keys (``Bearer rg_...``) or JWTs verified by ``identity`` with the
MCP audience; nothing is ever passed through to another service. One
:class:`McpHttpEndpoint` serves both protocol generations (2025 sessions with
``Mcp-Session-Id``; 2026-07-28 stateless requests); a session stays bound to the
credential that opened it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Protocol

import mcp_types as types
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from identity import Principal
from identity.auth import AuthConfig, Authenticator, AuthError, Caller
from mcp_server.config import McpConfig
from mcp_server.jsonrpc import Problem, parse_message, protocol_version_problem, shape_problem
from mcp_server.server import McpToolService, build_server
from store import Database
from tools.executor import ToolExecutor

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
PRM_PATH = "/.well-known/oauth-protected-resource"
_PRINCIPAL_KEY = "relaygraph.principal"


class RateLimiterLike(Protocol):
    async def check(self, principal: Principal, key_id: str | None) -> Any: ...


def principal_from_request(ctx: ServerRequestContext[Any, Any]) -> Principal:
    """The caller the HTTP endpoint authenticated for this message.

    Raises:
        MCPError: the request did not pass through :class:`McpHttpEndpoint` (a wiring bug).
    """
    request = ctx.request
    principal = getattr(request, "scope", {}).get(_PRINCIPAL_KEY) if request is not None else None
    if not isinstance(principal, Principal):
        raise MCPError(-32603, "the request carries no authenticated caller")
    return principal


def resource_url(config: McpConfig, request: Request) -> str:
    """This endpoint's public URL: configured, else derived from the request's host."""
    if config.resource_url:
        return config.resource_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}{MCP_PATH}"


def metadata_url(resource: str) -> str:
    """RFC 9728 §3.1: the well-known path inserted between host and resource path."""
    scheme, _, rest = resource.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host}{PRM_PATH}{slash}{path}".rstrip("/")


class McpHttpEndpoint:
    """The ASGI app behind ``/mcp``; serves only inside :meth:`serving`."""

    def __init__(self, config: McpConfig) -> None:
        self.config = config
        self._manager: StreamableHTTPSessionManager | None = None
        self._authenticator: Authenticator | None = None
        self._service: McpToolService | None = None
        self._limiter: RateLimiterLike | None = None

    @asynccontextmanager
    async def serving(
        self,
        executor: ToolExecutor,
        auth: AuthConfig,
        db: Database,
        *,
        limiter: RateLimiterLike | None = None,
    ) -> AsyncIterator[None]:
        """Serve requests until the context exits (run it inside the app's lifespan: the
        session manager's task group lives here).

        Callers are authenticated by an :class:`Authenticator` built from ``auth`` with this
        endpoint's JWT audience: verified API keys are cached for
        ``auth.api_key_cache_seconds``, and a key revoked in this process stops at once.
        """
        self._service = McpToolService(executor, self.config)
        self._authenticator = Authenticator(
            replace(auth, jwt_audience=self.config.jwt_audience or auth.jwt_audience), db
        )
        self._limiter = limiter
        self._manager = StreamableHTTPSessionManager(
            app=build_server(self._service, principal_from_request),
            # Origin is checked below; Host is not pinned so the endpoint works behind
            # any name the operator gives it. Content-Type is still enforced.
            security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        try:
            async with self._manager.run():
                yield
        finally:
            self._manager = None
            self._service = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope)
        manager, service, authenticator = self._manager, self._service, self._authenticator
        if manager is None or service is None or authenticator is None:
            await _problem(503, "unavailable", "the MCP endpoint is starting or stopping")(
                scope, receive, send
            )
            return
        origin = request.headers.get("origin")
        if not self.config.origin_allowed(origin):
            log.warning("MCP request from origin %r refused", origin)
            await _problem(
                403,
                "forbidden_origin",
                f"origin {origin!r} may not call this MCP endpoint; the operator allows "
                "others with RELAYGRAPH_MCP_ALLOWED_ORIGINS",
            )(scope, receive, send)
            return
        prm = metadata_url(resource_url(self.config, request))
        challenge_base = f'Bearer realm="relaygraph", resource_metadata="{prm}"'
        try:
            caller = await authenticator.identify(request.headers)
        except AuthError as exc:
            challenge = challenge_base
            if exc.code != "missing_credentials":
                challenge += f', error="invalid_token", error_description="{_quoted(exc.message)}"'
            await _problem(401, exc.code, exc.message, {"WWW-Authenticate": challenge})(
                scope, receive, send
            )
            return
        if not service.may_use_any(caller.principal):
            wanted = " ".join(sorted(self.config.allowed_scopes or ())) or "tools"
            message = (
                f"{caller.principal.user!r} may use none of the tools offered here; "
                f"the MCP profile allows scopes: {wanted}"
            )
            challenge = (
                f'{challenge_base}, error="insufficient_scope", scope="{wanted}", '
                f'error_description="{_quoted(message)}"'
            )
            await _problem(403, "insufficient_scope", message, {"WWW-Authenticate": challenge})(
                scope, receive, send
            )
            return
        if self._limiter is not None:
            decision = await self._limiter.check(caller.principal, caller.key_id)
            if not decision.allowed:
                retry = str(max(1, int(decision.retry_after_seconds)))
                await _problem(429, "rate_limited", decision.message, {"Retry-After": retry})(
                    scope, receive, send
                )
                return
        session_id = request.headers.get("mcp-session-id")
        version = request.headers.get("mcp-protocol-version")
        if request.method == "POST":
            if not _is_json(request.headers.get("content-type")):
                sent = request.headers.get("content-type")
                await _refusal(
                    415,
                    Problem(
                        types.INVALID_REQUEST,
                        f"Unsupported Media Type: Content-Type is {sent!r}; POST one JSON-RPC "
                        "message with Content-Type: application/json",
                    ),
                )(scope, receive, send)
                return
            limit = max(4 * self.config.max_argument_bytes, 1024 * 1024)
            body = await _read_body(receive, limit)
            if body is None:
                await _problem(
                    413,
                    "payload_too_large",
                    f"the request body is over {limit} bytes; send less data per call",
                )(scope, receive, send)
                return
            message, parse_problem = parse_message(body)
            problem = parse_problem or shape_problem(message)
            if problem is None:
                problem = protocol_version_problem(version)
                if problem is not None:
                    problem = replace(problem, request_id=message.get("id"))
            if problem is None and session_id is None:
                problem = _session_problem(message, version)
            if problem is not None:
                await _refusal(400, problem)(scope, receive, send)
                return
            receive = _replay(body, receive)
        else:
            problem = protocol_version_problem(version)
            if problem is not None:
                await _refusal(400, problem)(scope, receive, send)
                return
        send = _without_session_on_refusal(send) if session_id is None else _lost_session(send)
        scope[_PRINCIPAL_KEY] = caller.principal
        scope["user"] = AuthenticatedUser(_access_token(caller, request))
        await manager.handle_request(scope, receive, send)

    async def metadata(self, request: Request) -> Response:
        """Protected Resource Metadata (RFC 9728) for this endpoint."""
        resource = resource_url(self.config, request)
        scopes = sorted(self.config.allowed_scopes) if self.config.allowed_scopes else None
        document: dict[str, Any] = {
            "resource": resource,
            "resource_name": "relaygraph MCP tools",
            "bearer_methods_supported": ["header"],
        }
        if self.config.authorization_servers:
            document["authorization_servers"] = list(self.config.authorization_servers)
        if scopes:
            document["scopes_supported"] = scopes
        return JSONResponse(document, headers={"Cache-Control": "public, max-age=3600"})

    def routes(self) -> list[BaseRoute]:
        """``/mcp`` (exact path: no ``/mcp/mcp``) and both metadata locations."""
        return [
            Route(MCP_PATH, endpoint=self, methods=["GET", "POST", "DELETE"]),
            Route(PRM_PATH, endpoint=self.metadata, methods=["GET"]),
            Route(f"{PRM_PATH}{MCP_PATH}", endpoint=self.metadata, methods=["GET"]),
        ]


def standalone_app(endpoint: McpHttpEndpoint) -> Starlette:
    """A Starlette app with just the MCP routes. Its owner runs ``endpoint.serving``."""
    return Starlette(routes=endpoint.routes())


def _access_token(caller: Caller, request: Request) -> AccessToken:
    """What the SDK compares to keep a session bound to the credential that opened it."""
    principal = caller.principal
    credential = request.headers.get("authorization") or request.headers.get("x-api-key") or ""
    return AccessToken(
        token=hashlib.sha256(credential.encode()).hexdigest(),
        client_id=caller.key_id or f"{caller.method}:{principal.tenant}/{principal.user}",
        scopes=sorted(principal.scopes),
        subject=f"{principal.tenant}/{principal.user}",
    )


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it grows over ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the already-read body to the SDK, then defers to the client."""
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json"


def _session_problem(message: Any, version: str | None) -> Problem | None:
    """Why a POST without ``Mcp-Session-Id`` cannot be served (the SDK's answer, "Missing
    session ID", does not say what to do), or None: an ``initialize`` and 2026-07-28
    stateless requests need no session."""
    if version in MODERN_PROTOCOL_VERSIONS:
        return None
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if isinstance(meta, dict) and "io.modelcontextprotocol/protocolVersion" in meta:
        return None  # a stateless envelope: the SDK answers it
    method = message.get("method")
    if method == "initialize":
        return None
    request_id = message.get("id")
    return Problem(
        types.INVALID_REQUEST,
        f"Bad Request: {method or 'a response'} needs a session: POST initialize first and "
        "send the Mcp-Session-Id header it returns with every later request (or speak "
        "2026-07-28: Mcp-Protocol-Version: 2026-07-28 and the _meta envelope, no session)",
        request_id
        if isinstance(request_id, str | int) and not isinstance(request_id, bool)
        else None,
    )


def _without_session_on_refusal(send: Send) -> Send:
    """The SDK opens a session for every request that comes without one and discards it
    again when the request is refused, but still names it in the refusal's
    ``Mcp-Session-Id`` header: a client that keeps it only meets 404s. Dropped here."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] >= 400:
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != b"mcp-session-id"
            ]
            message = {**message, "headers": headers}
        await send(message)

    return sending


_LOST_SESSION = Problem(
    types.INVALID_REQUEST,
    "Session not found: it expired, was deleted, the server restarted, or it was opened "
    "with another credential; start a new session by POSTing initialize without an "
    "Mcp-Session-Id header",
)


def _lost_session(send: Send) -> Send:
    """The SDK's 404 for an unknown session says only "Session not found": the same
    status, with a body that says what to do (as the transport spec asks clients to)."""
    replacing = False

    async def sending(message: Message) -> None:
        nonlocal replacing
        if message["type"] == "http.response.start" and message["status"] == 404:
            replacing = True
            body = json.dumps(_LOST_SESSION.body()).encode()
            headers = [
                (k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**message, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if replacing:
            return  # the SDK's own body, already replaced
        await send(message)

    return sending


def _refusal(status: int, problem: Problem) -> Response:
    """A refusal before the SDK: a JSON-RPC error body, as the SDK's own refusals."""
    return JSONResponse(problem.body(), status_code=status)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def _problem(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps({"error": code, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)
