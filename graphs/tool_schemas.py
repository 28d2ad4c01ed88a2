"""Tool definitions for chat models, from the registry's pydantic input models.

Each definition is an OpenAI strict function (``strict: true``, every object closed,
every property required, optional ones nullable) that also carries the Gemini
declaration of the same tool: one schema cannot satisfy both (strict mode wants
``null`` types, Gemini refuses them), so the model router hands each provider its
own shape through :meth:`ToolDefinition.for_provider`.

langchain-google-genai turns JSON schema into Gemini's and reads nullability only from
``anyOf: [X, {"type": "null"}]`` (it drops ``nullable: true``), so the Gemini schema
is handed to it in that spelling; what reaches the API is the Gemini schema with
``nullable`` (tests/graphs/test_tool_schemas.py checks the request a Gemini stub got).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel

from tools import ToolRegistry
from tools.schemas import gemini_schema, openai_strict_schema


class ToolDefinition(dict[str, Any]):
    """``{"type": "function", "function": {name, description, parameters, strict}}``,
    sent as it is to OpenAI and OpenAI-compatible endpoints; ``for_provider("google")``
    gives the Gemini declaration instead (``gemini``: its parameters schema)."""

    def __init__(self, openai: dict[str, Any], gemini: dict[str, Any]) -> None:
        super().__init__(openai)
        self.gemini = gemini

    def for_provider(self, kind: str) -> dict[str, Any]:
        """The shape the provider of ``kind`` (a model spec's kind) accepts; a new dict
        each time (langchain-google-genai edits what it is given)."""
        if kind != "google":
            return dict(self)
        function = self["function"]
        return {
            "type": "function",
            "function": {
                "name": function["name"],
                "description": function["description"],
                "parameters": _langchain_genai_dialect(self.gemini),
            },
        }


def _langchain_genai_dialect(node: Any) -> Any:
    """A Gemini schema spelled as langchain-google-genai reads it (see the module)."""
    if isinstance(node, list):
        return [_langchain_genai_dialect(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {
        key: {name: _langchain_genai_dialect(prop) for name, prop in value.items()}
        if key == "properties"
        else _langchain_genai_dialect(value)
        for key, value in node.items()
        if key not in ("nullable", "propertyOrdering")
    }
    if not node.get("nullable"):
        return out
    nullable: dict[str, Any] = {"anyOf": [out, {"type": "null"}]}
    if "description" in out:
        nullable["description"] = out.pop("description")
    return nullable


@lru_cache(maxsize=1024)
def _definition(name: str, description: str, model: type[BaseModel]) -> ToolDefinition:
    function = {"name": name, "description": description}
    return ToolDefinition(
        {
            "type": "function",
            "function": {**function, "parameters": openai_strict_schema(model), "strict": True},
        },
        gemini_schema(model),
    )


def tool_definitions(registry: ToolRegistry, names: Iterable[str]) -> list[ToolDefinition]:
    """Definitions for the named tools (unknown names are skipped). They are computed
    once per tool and shared: treat them as read-only."""
    definitions: list[ToolDefinition] = []
    for name in names:
        tool = registry.get(name)
        if tool is not None:
            definitions.append(_definition(tool.name, tool.description, tool.input_model))
    return definitions
