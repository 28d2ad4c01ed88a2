"""How a registry tool looks to an MCP client: schemas, annotations, the approval argument.

Everything here is derived from the ``ToolSpec``; nothing is declared twice.
"""

from __future__ import annotations

import copy
from typing import Any

import mcp_types as types

from tools.types import APPROVAL_ARG, ToolSpec

_APPROVAL_PROPERTY: dict[str, Any] = {
    "type": "string",
    "maxLength": 200,
    "description": (
        "Only when repeating a call that was refused for lack of approval: the approval id "
        "from that refusal, after a reviewer approved it. Leave out otherwise."
    ),
}


def may_need_approval(tool: ToolSpec) -> bool:
    """Whether a call of ``tool`` can ever be held for approval (then it gets the reserved
    argument). Any non-read tool can, once a session is tainted."""
    return tool.may_need_approval


def tool_annotations(tool: ToolSpec) -> types.ToolAnnotations:
    """All four hints set from the tool's risk (the spec's defaults would make clients
    treat read tools as destructive)."""
    hints = tool.mcp_annotations()
    return types.ToolAnnotations(
        title=tool.display_title,
        read_only_hint=hints["readOnlyHint"],
        destructive_hint=hints["destructiveHint"],
        idempotent_hint=hints["idempotentHint"],
        open_world_hint=hints["openWorldHint"],
    )


def input_schema(tool: ToolSpec) -> dict[str, Any]:
    """The tool's input schema, plus the reserved ``approval_id`` argument when the tool
    may need approval. A tool's own argument named ``approval_id`` is a registration
    error: the reserved name would shadow it."""
    schema = copy.deepcopy(tool.input_schema())
    schema.setdefault("type", "object")
    properties = schema.setdefault("properties", {})
    if not properties and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    if may_need_approval(tool):
        if APPROVAL_ARG in properties:
            raise ValueError(f"tool {tool.name!r} declares the reserved argument {APPROVAL_ARG!r}")
        properties[APPROVAL_ARG] = dict(_APPROVAL_PROPERTY)
    return schema


def mcp_tool(tool: ToolSpec) -> types.Tool:
    """The MCP ``Tool`` entry for ``tool``; ``structuredContent`` of its results conforms
    to the output schema."""
    return types.Tool(
        name=tool.name,
        title=tool.display_title,
        description=tool.description,
        input_schema=input_schema(tool),
        output_schema=dict(tool.output_schema()),
        annotations=tool_annotations(tool),
    )
