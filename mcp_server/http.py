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

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from identity import Principal
from identity.auth import AuthConfig, Authenticator, AuthError, Caller
from mcp_server.config import McpConfig
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
        if request.method == "POST":
            limit = max(4 * self.config.max_argument_bytes, 1024 * 1024)
            body = await _read_body(receive, limit)
            if body is None:
                await _problem(
                    413,
                    "payload_too_large",
                    f"the request body is over {limit} bytes; send less data per call",
                )(scope, receive, send)
                return
            invalid = _invalid_jsonrpc(body)
            if invalid is not None:
                await JSONResponse(invalid, status_code=400)(scope, receive, send)
                return
            receive = _replay(body, receive)
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


def _invalid_jsonrpc(body: bytes) -> dict[str, Any] | None:
    """A JSON-RPC -32600 answer for valid JSON that is no JSON-RPC 2.0 message (the SDK
    answers those with -32602); None for anything the SDK should see (invalid JSON
    included: it answers -32700 itself)."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    problem: str | None = None
    if not isinstance(message, dict):
        problem = "the body must be one JSON-RPC 2.0 object"
    elif message.get("jsonrpc") != "2.0":
        problem = '"jsonrpc" must be "2.0"'
    elif "method" in message and not isinstance(message["method"], str):
        problem = '"method" must be a string'
    elif "method" not in message and not ("result" in message or "error" in message):
        problem = "a message needs a method, a result or an error"
    elif "params" in message and not isinstance(message["params"], dict | list):
        problem = '"params" must be an object'
    elif "id" in message and (
        isinstance(message["id"], bool) or not isinstance(message["id"], int | str | None)
    ):
        problem = '"id" must be a string or an integer'
    if problem is None:
        return None
    request_id = message.get("id") if isinstance(message, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, int | str):
        request_id = None
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": -32600, "message": f"Invalid Request: {problem}"},
    }


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', "'")


def _problem(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps({"error": code, "message": message})
    return Response(body, status_code=status, media_type="application/json", headers=headers)
