"""Built-in tools, configured from settings by :func:`builtin_tools`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tools.builtin.email import EMAIL_TOOLS
from tools.builtin.files import files_tools
from tools.builtin.http_fetch import Fetcher, Resolver, http_fetch_tool, system_resolver
from tools.builtin.memory import MemoriesProvider, memory_tools
from tools.builtin.notes import NOTES_TOOLS
from tools.builtin.tickets import TICKETS_TOOLS
from tools.types import ToolSpec


@dataclass(frozen=True)
class BuiltinConfig:
    """``files_root`` None: no file tools; no allowed domains: no http_fetch."""

    files_root: Path | None = None
    http_allowed_domains: tuple[str, ...] = ()
    http_allow_networks: tuple[str, ...] = ()
    http_max_bytes: int = 1_000_000
    http_timeout_seconds: float = 15.0
    http_resolver: Resolver = field(default=system_resolver)
    memories: MemoriesProvider | None = None
    """Resolves the memory service per call; None: no memory_* tools (issue 5)."""


def builtin_tools(config: BuiltinConfig | None = None) -> list[ToolSpec]:
    config = config or BuiltinConfig()
    tools: list[ToolSpec] = [*NOTES_TOOLS, *TICKETS_TOOLS, *EMAIL_TOOLS]
    if config.files_root is not None:
        tools.extend(files_tools(config.files_root))
    if config.http_allowed_domains:
        fetcher = Fetcher(
            config.http_allowed_domains,
            max_bytes=config.http_max_bytes,
            timeout_seconds=config.http_timeout_seconds,
            allow_networks=config.http_allow_networks,
            resolver=config.http_resolver,
        )
        tools.append(http_fetch_tool(fetcher))
    if config.memories is not None:
        tools.extend(memory_tools(config.memories))
    return tools


BUILTIN_TOOLS = builtin_tools()
"""The tools that need no configuration (notes, tickets, email)."""

__all__ = ["BUILTIN_TOOLS", "BuiltinConfig", "builtin_tools"]
