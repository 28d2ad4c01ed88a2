"""Third-party MCP servers attached as registry entries.

Each configured server (a stdio command or a Streamable HTTP URL) contributes only the
tools on its allow-list, each with the risk, scope, approval rule and timeout the
operator gave it. The entries are ordinary :class:`ToolSpec` s, so every call passes
the same gate, ledger and audit as our own tools; their output's source is
``external:<server>``, untrusted unless the trust configuration says otherwise.
Names are namespaced (``<server>_<tool>``) and kept within 64 characters.

Credentials can differ per tenant (``tenant_env`` for stdio, ``tenant_headers`` for
HTTP): a call runs with the credentials of the calling principal's tenant and never
with another tenant's. One session per (server, credentials) stays open and is shared
by concurrent calls; a session found broken (its process died, its connection closed,
or an HTTP server no longer knows its session id) is replaced. A call that was sent when
the connection broke is repeated on a fresh session only if the tool is a read or is
declared idempotent; any other fails with ``in_doubt`` (it may have taken effect; the
ledger keeps that answer for repeats of its key). Every call carries its ledger key as
an idempotency key, in ``_meta`` (:data:`IDEMPOTENCY_META`) and, where the remote tool's
input schema declares an ``idempotency_key`` argument, there too.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.types import TOOL_NAME, ApprovalRule, Risk, ToolContext, ToolError, ToolSpec

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME = 64
IDEMPOTENCY_META = "io.relaygraph/idempotency-key"
IDEMPOTENCY_ARGS = ("idempotency_key", "idempotencyKey")
DROP_WAIT_SECONDS = 5.0
"""How long a call waits for a broken session to close before going on without it."""


class ExternalToolPolicy(BaseModel):
    """How one allowed tool of an attached server is treated."""

    model_config = ConfigDict(extra="forbid")

    risk: Risk
    scope: str = Field(min_length=1, description="Scope a principal needs to call it.")
    approval: ApprovalRule = "when_untrusted"
    timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    idempotent: bool = False
    title: str | None = None


class ExternalServerConfig(BaseModel):
    """One attached MCP server. Set ``command`` (stdio) or ``url`` (Streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,32}$", description="Namespace of its tools.")
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    tenant_env: dict[str, dict[str, str]] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    tenant_headers: dict[str, dict[str, str]] = Field(default_factory=dict)
    per_tenant_credentials: bool = Field(
        default=False,
        description="Refuse calls from tenants without their own credentials entry.",
    )
    tools: dict[str, ExternalToolPolicy] = Field(
        description="Allow-list: remote tool name → policy. Unlisted tools are not exposed."
    )

    @model_validator(mode="after")
    def _one_transport(self) -> ExternalServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"attached server {self.name!r}: set exactly one of command and url")
        return self

    @property
    def transport(self) -> Literal["stdio", "http"]:
        return "stdio" if self.command is not None else "http"


class ExternalOutput(BaseModel):
    """What an attached tool returned: its text blocks joined, and its structured result."""

    text: str
    structured: dict[str, Any] | None = None


def namespaced(server: str, tool: str) -> str:
    """``<server>_<tool>`` with unsafe characters replaced, at most 64 characters (a
    digest suffix keeps long names distinct)."""
    name = _UNSAFE.sub("_", f"{server}_{tool}")
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}_{digest}"
    return name


def input_model_for(name: str, schema: Mapping[str, Any]) -> type[BaseModel]:
    """A pydantic model that validates arguments against the server's JSON schema and
    reports that schema as its own (so MCP clients and models see the original).

    Raises:
        ValueError: the schema is not a valid JSON schema.
    """
    published = copy.deepcopy(dict(schema))
    published.setdefault("type", "object")
    try:
        Draft202012Validator.check_schema(published)
    except SchemaError as exc:
        raise ValueError(f"tool {name!r} has an invalid input schema: {exc.message}") from None
    validator = Draft202012Validator(published)

    class ExternalInput(BaseModel):
        model_config = ConfigDict(extra="allow")

        @model_validator(mode="before")
        @classmethod
        def _check(cls, data: Any) -> Any:
            if not isinstance(data, dict):
                raise ValueError("arguments must be a JSON object")
            errors = sorted(validator.iter_errors(data), key=lambda error: list(error.path))
            if errors:
                raise ValueError(
                    "; ".join(
                        f"{'.'.join(str(part) for part in error.path) or 'arguments'}: "
                        f"{error.message}"
                        for error in errors[:5]
                    )
                )
            return data

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return copy.deepcopy(published)

    ExternalInput.__name__ = ExternalInput.__qualname__ = f"{name}_input"
    return ExternalInput


def _closed(client: Any) -> bool:
    """Whether the client's connection is known to be closed (the SDK's dispatcher
    flag; False when this SDK version keeps it elsewhere)."""
    dispatcher = getattr(getattr(client, "session", None), "_dispatcher", None)
    return bool(getattr(dispatcher, "_closed", False))


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``exc`` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _describe(exc: BaseException) -> str:
    """``Type: message`` of the first real error (task groups wrap transport errors)."""
    leaf = _leaves(exc)[0]
    return f"{type(leaf).__name__}: {leaf}" if str(leaf) else type(leaf).__name__


def _connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection broke (the call's fate is unknown), as opposed
    to an answer from the server."""
    import anyio
    import httpx2
    from mcp import MCPError
    from mcp_types.jsonrpc import CONNECTION_CLOSED

    lost = (
        anyio.ClosedResourceError,
        anyio.BrokenResourceError,
        anyio.EndOfStream,
        OSError,
        httpx2.TransportError,
    )
    leaves = _leaves(exc)
    return all(
        leaf.code == CONNECTION_CLOSED if isinstance(leaf, MCPError) else isinstance(leaf, lost)
        for leaf in leaves
    )


_UNKNOWN_SESSION = re.compile(r"^session (not found|terminated)$", re.IGNORECASE)


def _session_unknown(exc: BaseException) -> bool:
    """Whether a Streamable HTTP server refused the call because it does not know the
    session (HTTP 404 with a session id, as after a restart): the call did not run, and
    the client must start a new session."""
    from mcp import MCPError
    from mcp_types.jsonrpc import INVALID_REQUEST

    return (
        isinstance(exc, MCPError)
        and exc.code == INVALID_REQUEST
        and bool(_UNKNOWN_SESSION.match(exc.error.message.strip()))
    )


class _HeldSession:
    """One open MCP client session, entered and exited by its own task (the SDK's
    context managers must be left by the task that entered them); calls from any task
    of the same event loop share it."""

    def __init__(self, open_client: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self._open_client = open_client
        self.loop = asyncio.get_running_loop()
        self.client: Any = None
        self.broken = False
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._error: BaseException | None = None
        self.task = asyncio.create_task(self._hold(), name="attached-mcp-session")

    async def _hold(self) -> None:
        try:
            async with self._open_client() as client:
                self.client = client
                self._ready.set()
                await self._closing.wait()
        except Exception as exc:  # reported to the caller that waits in started()
            self._error = exc
        finally:
            self.broken = True
            self._ready.set()

    async def started(self) -> Any:
        """The client once connected.

        Raises:
            Exception: why the connection failed.
        """
        await self._ready.wait()
        if self.client is None or self.broken:
            raise self._error or ConnectionError("the attached MCP session closed")
        return self.client

    async def aclose(self, *, wait_at_most: float | None = None) -> bool:
        """Close the session; False if it was still closing (in its own task) after
        ``wait_at_most`` seconds."""
        self.broken = True
        self._closing.set()
        if asyncio.get_running_loop() is not self.loop:
            return True
        done, _ = await asyncio.wait([self.task], timeout=wait_at_most)  # errors went to callers
        return bool(done)


class AttachedServer:
    """One configured server: a kept-open session per set of credentials."""

    def __init__(self, config: ExternalServerConfig) -> None:
        self.config = config
        self._sessions: dict[str | None, _HeldSession] = {}
        self._retiring: set[_HeldSession] = set()
        self.connects = 0
        """Sessions opened so far (tests and metrics: one per credentials, not per call)."""

    def credentials_of(self, tenant: str | None) -> str | None:
        """Whose credentials a call from ``tenant`` uses: the tenant's own, or the
        default ones (None).

        Raises:
            ToolError: ``not_configured``, the server needs per-tenant credentials and
                ``tenant`` has none.
        """
        config = self.config
        known = config.tenant_env if config.transport == "stdio" else config.tenant_headers
        if tenant is not None and config.per_tenant_credentials and tenant not in known:
            raise ToolError(
                "not_configured",
                f"the attached server {config.name!r} has no credentials for tenant "
                f"{tenant!r}; an operator adds them to its configuration",
            )
        return tenant if tenant in known else None

    async def call_tool(
        self,
        tenant: str | None,
        remote: str,
        arguments: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        retry_in_flight: bool = False,
    ) -> Any:
        """Call ``remote`` over the kept session for ``tenant``'s credentials.

        A session that is already broken, or that an HTTP server no longer knows, is
        replaced and the call sent on a fresh one (it did not run). A connection that
        breaks while the call is in flight is dropped (the next call reconnects); the
        call is sent again only with ``retry_in_flight`` (reads and idempotent tools).

        Raises:
            ToolError: ``not_configured`` (see :meth:`credentials_of`);
                ``external_unavailable``, the server cannot be reached (nothing ran);
                ``in_doubt``, the connection broke while the call was in flight and it
                is not repeated: it may or may not have taken effect.
        """
        owner = self.credentials_of(tenant)
        meta = cast(Any, {IDEMPOTENCY_META: idempotency_key}) if idempotency_key else None
        for attempt in (1, 2):
            last = attempt == 2
            session = self._session(owner)
            try:
                client = await session.started()
            except Exception as exc:
                await self._drop(owner, session)
                if last:
                    raise self._unavailable(exc) from exc
                continue
            if _closed(client):  # it died while idle: nothing is sent on it
                await self._drop(owner, session)
                if last:
                    raise self._unavailable(ConnectionError("connection closed"))
                continue
            try:
                return await client.call_tool(remote, arguments, meta=meta)
            except Exception as exc:
                if _session_unknown(exc):  # refused unrun: a fresh session may send it
                    await self._drop(owner, session)
                    if last:
                        raise self._unavailable(exc) from exc
                    continue
                if not _connection_lost(exc):
                    raise  # the server answered: not a connection problem
                await self._drop(owner, session)
                if not retry_in_flight:
                    raise self._in_doubt(remote, exc) from exc
                if last:
                    raise self._unavailable(exc) from exc
        raise AssertionError("unreachable")

    def _unavailable(self, exc: BaseException) -> ToolError:
        return ToolError(
            "external_unavailable",
            f"the attached server {self.config.name!r} is unreachable or dropped the "
            f"connection ({_describe(exc)}); the next call reconnects",
        )

    def _in_doubt(self, remote: str, exc: BaseException) -> ToolError:
        return ToolError(
            "in_doubt",
            f"the attached server {self.config.name!r} dropped the connection while "
            f"{remote!r} was in flight ({_describe(exc)}); it may or may not have taken "
            "effect and is not repeated automatically: check its effect, then ask again "
            "if needed (the next call reconnects)",
        )

    def _session(self, owner: str | None) -> _HeldSession:
        # No await between the check and the replacement: concurrent first calls of one
        # event loop share the session the first of them started.
        session = self._sessions.get(owner)
        if session is None or session.broken or session.loop is not asyncio.get_running_loop():
            session = _HeldSession(lambda: self.client(owner, checked=True))
            self._sessions[owner] = session
            self.connects += 1
        return session

    async def _drop(self, owner: str | None, session: _HeldSession) -> None:
        """Forget a broken session and close it, waiting at most :data:`DROP_WAIT_SECONDS`
        (a caller must not wait on a slow teardown, e.g. a session DELETE to a hung
        server); a slower one finishes in its own task, and :meth:`aclose` waits for it."""
        if self._sessions.get(owner) is session:
            del self._sessions[owner]
        if not await session.aclose(wait_at_most=DROP_WAIT_SECONDS):
            self._retiring.add(session)
            session.task.add_done_callback(lambda _task: self._retiring.discard(session))

    async def aclose(self) -> None:
        """Close every kept session (at shutdown)."""
        sessions = [*self._sessions.values(), *self._retiring]
        self._sessions, self._retiring = {}, set()
        for session in sessions:
            await session.aclose()

    def client(
        self, tenant: str | None, *, checked: bool = False
    ) -> AbstractAsyncContextManager[Any]:
        """A new MCP client for ``tenant``'s credentials (None: the default ones).

        Raises:
            ToolError: ``not_configured``, the server needs per-tenant credentials and
                ``tenant`` has none.
        """
        from mcp import Client, StdioServerParameters

        config = self.config
        if not checked:
            self.credentials_of(tenant)
        if config.command is not None:
            env = {"PATH": os.environ.get("PATH", ""), **config.env}
            if tenant is not None:
                env.update(config.tenant_env.get(tenant, {}))
            params = StdioServerParameters(command=config.command, args=config.args, env=env)
            return Client(params, mode="legacy", read_timeout_seconds=60)
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        headers = dict(config.headers)
        if tenant is not None:
            headers.update(config.tenant_headers.get(tenant, {}))
        assert config.url is not None
        http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0))
        return Client(streamable_http_client(config.url, http_client=http), read_timeout_seconds=60)

    async def tool_specs(self) -> list[ToolSpec]:
        """Connect once, list the server's tools and build entries for the allowed ones.

        Raises:
            Exception: the server cannot be reached (callers decide whether that is fatal).
        """
        session = self._session(None)  # kept open: the first call reuses it
        try:
            client = await session.started()
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        except BaseException:
            await self._drop(None, session)
            raise
        specs = []
        for remote, policy in sorted(self.config.tools.items()):
            tool = listed.get(remote)
            if tool is None:
                log.warning(
                    "attached server %s does not offer allowed tool %r; skipped",
                    self.config.name,
                    remote,
                )
                continue
            specs.append(self._spec(remote, tool.description or "", tool.input_schema, policy))
        return specs

    def _spec(
        self,
        remote: str,
        description: str,
        schema: Mapping[str, Any],
        policy: ExternalToolPolicy,
    ) -> ToolSpec:
        name = namespaced(self.config.name, remote)
        assert TOOL_NAME.match(name)

        accepts_key = next(
            (arg for arg in IDEMPOTENCY_ARGS if arg in (schema.get("properties") or {})), None
        )

        async def call(ctx: ToolContext, args: BaseModel) -> ExternalOutput:
            arguments = args.model_dump(mode="json")
            if accepts_key and ctx.idempotency_key and accepts_key not in arguments:
                arguments[accepts_key] = ctx.idempotency_key
            result = await self.call_tool(
                ctx.principal.tenant,
                remote,
                arguments,
                idempotency_key=ctx.idempotency_key,
                retry_in_flight=policy.idempotent or policy.risk == "read",
            )
            text = "\n".join(
                block.text for block in result.content if getattr(block, "type", "") == "text"
            )
            if result.is_error:
                raise ToolError("external_error", f"{self.config.name}/{remote}: {text[:2000]}")
            structured = result.structured_content
            return ExternalOutput(text=text, structured=structured)

        call.attached = self  # type: ignore[attr-defined]
        return ToolSpec(
            name=name,
            title=policy.title or f"{self.config.name}: {remote}",
            description=f"[{self.config.name}] {description}".strip(),
            input_model=input_model_for(name, schema),
            output_model=ExternalOutput,
            handler=call,
            risk=policy.risk,
            scope=policy.scope,
            approval=policy.approval,
            timeout_seconds=policy.timeout_seconds,
            idempotent=policy.idempotent,
            transactional=False,
            source=f"external:{self.config.name}",
            open_world=True,
        )


async def external_tools(configs: list[ExternalServerConfig]) -> list[ToolSpec]:
    """Registry entries for every reachable configured server; an unreachable server is
    logged and left out, so one broken attachment does not stop relaygraph."""
    specs: list[ToolSpec] = []
    for config in configs:
        try:
            specs.extend(await AttachedServer(config).tool_specs())
        except Exception:
            log.exception(
                "attached MCP server %s is unavailable; its tools are left out", config.name
            )
    return specs


async def close_attached(tools: Iterable[ToolSpec]) -> None:
    """Close the sessions kept by the attached servers behind ``tools`` (at shutdown)."""
    servers = {
        id(server): server
        for tool in tools
        if isinstance(server := getattr(tool.handler, "attached", None), AttachedServer)
    }
    for server in servers.values():
        await server.aclose()
