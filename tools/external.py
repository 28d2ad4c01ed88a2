"""Third-party MCP servers attached as registry entries.

Each configured server (a stdio command or a Streamable HTTP URL) contributes only the
tools on its allow-list, each with the risk, scope, approval rule and timeout the
operator gave it. The entries are ordinary :class:`ToolSpec` s, so every call passes
the same gate, ledger and audit as our own tools; their output's source is
``external:<server>``, untrusted unless the trust configuration says otherwise.
Names are namespaced (``<server>_<tool>``) and kept within 64 characters.

Credentials can differ per tenant (``tenant_env`` for stdio, ``tenant_headers`` for
HTTP): a call runs with the credentials of the calling principal's tenant and never
with another tenant's. Each call opens its own connection: simple and isolated; a
pooled session per (server, tenant) is the next step if start-up cost matters.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import re
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tools.types import TOOL_NAME, ApprovalRule, Risk, ToolContext, ToolError, ToolSpec

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")
MAX_NAME = 64


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


class AttachedServer:
    """Connections to one configured server, with the credentials of a tenant."""

    def __init__(self, config: ExternalServerConfig) -> None:
        self.config = config

    def client(self, tenant: str | None) -> AbstractAsyncContextManager[Any]:
        """An MCP client session for ``tenant`` (None: the default credentials).

        Raises:
            ToolError: ``not_configured``, the server needs per-tenant credentials and
                ``tenant`` has none.
        """
        from mcp import Client, StdioServerParameters

        config = self.config
        if tenant is not None and config.per_tenant_credentials:
            known = config.tenant_env if config.transport == "stdio" else config.tenant_headers
            if tenant not in known:
                raise ToolError(
                    "not_configured",
                    f"the attached server {config.name!r} has no credentials for tenant "
                    f"{tenant!r}; an operator adds them to its configuration",
                )
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
        async with self.client(None) as client:
            listed = {tool.name: tool for tool in (await client.list_tools()).tools}
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

        async def call(ctx: ToolContext, args: BaseModel) -> ExternalOutput:
            arguments = args.model_dump(mode="json")
            async with self.client(ctx.principal.tenant) as client:
                result = await client.call_tool(remote, arguments)
            text = "\n".join(
                block.text for block in result.content if getattr(block, "type", "") == "text"
            )
            if result.is_error:
                raise ToolError("external_error", f"{self.config.name}/{remote}: {text[:2000]}")
            structured = result.structured_content
            return ExternalOutput(text=text, structured=structured)

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
