"""Tool definitions for chat models, from the registry's pydantic input models."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tools import ToolRegistry


def tool_definitions(registry: ToolRegistry, names: Iterable[str]) -> list[dict[str, Any]]:
    """OpenAI-style function definitions for the named tools (unknown names are skipped)."""
    definitions = []
    for name in names:
        tool = registry.get(name)
        if tool is None:
            continue
        definitions.append(
            {
                "type": "function",
                "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.input_schema(),
                },
            }
        )
    return definitions
