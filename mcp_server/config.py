"""What the MCP server needs to know, as plain values (built from settings by the caller).

``mcp_server`` may not import ``runtime``; :meth:`McpConfig.from_settings` reads the
``mcp_*`` attributes off whatever settings object it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

LOCAL_ORIGINS: tuple[str, ...] = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


@dataclass(frozen=True)
class McpConfig:
    """How relaygraph serves its tools over MCP.

    ``allowed_scopes`` and ``tools`` are the ``mcp`` assistant profile: every caller's
    scopes are narrowed to ``allowed_scopes`` (None: no narrowing) and only ``tools``
    (None: every registered tool) are offered. ``tainted`` makes every MCP call count
    as coming from a session that has read untrusted content, so ``when_untrusted``
    tools need approval. ``resource_url`` is the public URL of the MCP endpoint; left
    unset it is derived from each request (fine on one machine, set it behind a proxy).
    ``jwt_audience`` is the ``aud`` JWTs must carry to be accepted here (default: the
    resource URL, else the API's ``jwt_audience``); API keys are cached as on the API
    (``AuthConfig.api_key_cache_seconds``). ``stateless_taint_seconds``: stateless
    (2026-07-28) requests have no session to remember taint in, so an untrusted read
    taints the calling principal's stateless calls for this long (per server process).
    """

    allowed_scopes: frozenset[str] | None = None
    tools: frozenset[str] | None = None
    tainted: bool = False
    max_argument_bytes: int = 256 * 1024
    allowed_origins: tuple[str, ...] = LOCAL_ORIGINS
    resource_url: str | None = None
    jwt_audience: str | None = None
    authorization_servers: tuple[str, ...] = ()
    progress_interval_seconds: float = 5.0
    stateless_taint_seconds: float = 3600.0
    server_name: str = "relaygraph"
    server_version: str = "0.1.0"
    instructions: str = field(
        default=(
            "relaygraph tools, filtered by your permissions. A call that needs a human's "
            "approval fails with an approval id: ask a reviewer to approve it, then repeat "
            "the same call with the extra argument approval_id."
        )
    )

    def unknown_names(self, tools: Sequence[Any]) -> list[str]:
        """What ``tools`` and ``allowed_scopes`` name that none of ``tools`` (the registered
        ToolSpecs) has, each said with what there is."""
        problems = []
        names = sorted(tool.name for tool in tools)
        scopes = sorted({tool.scope for tool in tools})
        if self.tools is not None and (missing := sorted(self.tools - set(names))):
            problems.append(
                f"RELAYGRAPH_MCP_TOOLS names no registered tool {', '.join(missing)}; "
                f"tools: {', '.join(names)}"
            )
        if self.allowed_scopes is not None and (
            missing := sorted(self.allowed_scopes - set(scopes))
        ):
            problems.append(
                f"RELAYGRAPH_MCP_ALLOWED_SCOPES names no tool's scope {', '.join(missing)}; "
                f"scopes: {', '.join(scopes)}"
            )
        return problems

    @classmethod
    def from_settings(cls, settings: Any) -> McpConfig:
        """Read the ``mcp_*`` fields of relaygraph's ``Settings`` (duck-typed)."""
        scopes = getattr(settings, "mcp_allowed_scopes", None)
        tools = getattr(settings, "mcp_tools", None)
        servers = list(getattr(settings, "mcp_authorization_servers", None) or [])
        issuer = getattr(settings, "jwt_issuer", None)
        if not servers and issuer:
            servers = [issuer]
        origins = getattr(settings, "mcp_allowed_origins", None)
        return cls(
            allowed_scopes=frozenset(scopes) if scopes is not None else None,
            tools=frozenset(tools) if tools is not None else None,
            tainted=bool(getattr(settings, "mcp_tainted", False)),
            max_argument_bytes=int(getattr(settings, "mcp_max_argument_bytes", 256 * 1024)),
            stateless_taint_seconds=float(getattr(settings, "mcp_stateless_taint_seconds", 3600.0)),
            allowed_origins=tuple(origins) if origins else LOCAL_ORIGINS,
            resource_url=getattr(settings, "mcp_resource_url", None),
            jwt_audience=(
                getattr(settings, "mcp_jwt_audience", None)
                or getattr(settings, "mcp_resource_url", None)
            ),
            authorization_servers=tuple(servers),
        )

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a browser ``Origin`` may reach the endpoint. Absent: yes (not a browser).

        Entries ending in ``:*`` match any port of that scheme and host; ``*`` alone
        allows every origin (only for deliberately public endpoints).
        """
        if not origin:
            return True
        for allowed in self.allowed_origins:
            if allowed == "*" or origin == allowed:
                return True
            if allowed.endswith(":*"):
                base = allowed[:-2]
                port = origin[len(base) + 1 :] if origin.startswith(base + ":") else ""
                if port.isdigit():
                    return True
        return False
