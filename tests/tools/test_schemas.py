"""tools/schemas.py and tools/types.py: every tool's schemas fit OpenAI strict mode and
Gemini, names fit the pattern, annotations follow the risk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from tools import BuiltinConfig, ToolSpec, builtin_tools
from tools.schemas import (
    gemini_problems,
    gemini_schema,
    openai_strict_problems,
    openai_strict_schema,
)
from tools.types import TOOL_NAME


async def _resolve(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


ALL_TOOLS = builtin_tools(
    BuiltinConfig(
        files_root=Path("/nonexistent/relaygraph-files"),
        http_allowed_domains=("example.org",),
        http_resolver=_resolve,
    )
)


def test_the_full_builtin_set_is_configured() -> None:
    names = {tool.name for tool in ALL_TOOLS}
    for expected in (
        "notes_create",
        "notes_search",
        "notes_update",
        "notes_delete",
        "tickets_create",
        "tickets_search",
        "tickets_update",
        "tickets_close",
        "tickets_delete",
        "files_list",
        "files_read",
        "files_write",
        "http_fetch",
        "email_send",
    ):
        assert expected in names


@pytest.mark.parametrize("tool", ALL_TOOLS, ids=lambda tool: tool.name)
def test_tool_declares_everything(tool: ToolSpec) -> None:
    assert TOOL_NAME.match(tool.name)
    assert tool.description and tool.risk in ("read", "write", "destructive")
    assert ":" in tool.scope and tool.timeout_seconds > 0
    assert tool.approval_label() in ("never", "always", "when_untrusted", "predicate")
    if tool.side_effecting:
        assert tool.supports_dry_run, "write tools must say what they would do"
    if tool.risk == "destructive":
        assert tool.approval == "always"
    assert tool.output_schema()["type"] == "object"


@pytest.mark.parametrize("tool", ALL_TOOLS, ids=lambda tool: tool.name)
def test_input_schema_is_valid_for_openai_strict_mode(tool: ToolSpec) -> None:
    schema = openai_strict_schema(tool.input_model)

    assert openai_strict_problems(schema) == []


@pytest.mark.parametrize("tool", ALL_TOOLS, ids=lambda tool: tool.name)
def test_strict_schema_keeps_every_property(tool: ToolSpec) -> None:
    """Properties named like dropped keywords (``title``, ``format``) stay."""
    declared = set(tool.input_model.model_json_schema().get("properties", {}))

    assert set(openai_strict_schema(tool.input_model)["properties"]) == declared
    assert set(gemini_schema(tool.input_model).get("properties", {})) == declared


def test_strict_schema_moves_string_lengths_into_the_description() -> None:
    class Named(BaseModel):
        title: str = Field(min_length=1, max_length=80, description="The title.")
        format: str | None = Field(default=None, max_length=10)

    schema = openai_strict_schema(Named)

    assert schema["required"] == ["title", "format"]
    assert schema["properties"]["title"] == {
        "type": "string",
        "description": "The title (1 to 80 characters)",
    }
    assert openai_strict_problems(schema) == []


@pytest.mark.parametrize("tool", ALL_TOOLS, ids=lambda tool: tool.name)
def test_input_schema_is_valid_for_gemini(tool: ToolSpec) -> None:
    schema = gemini_schema(tool.input_model)

    assert gemini_problems(schema) == []
    assert set(schema.get("required", [])) <= set(schema["properties"])


@pytest.mark.parametrize(
    ("name", "hints"),
    [
        ("notes_search", (True, False, True)),
        ("notes_create", (False, False, False)),
        ("notes_delete", (False, True, True)),
    ],
)
def test_annotations_follow_the_risk(name: str, hints: tuple[bool, bool, bool]) -> None:
    tool = next(t for t in ALL_TOOLS if t.name == name)

    annotations = tool.mcp_annotations()

    assert set(annotations) == {
        "readOnlyHint",
        "destructiveHint",
        "idempotentHint",
        "openWorldHint",
    }
    assert (
        annotations["readOnlyHint"],
        annotations["destructiveHint"],
        annotations["idempotentHint"],
    ) == hints


def test_open_world_tools_say_so() -> None:
    by_name = {tool.name: tool for tool in ALL_TOOLS}

    assert by_name["http_fetch"].mcp_annotations()["openWorldHint"] is True
    assert by_name["email_send"].mcp_annotations()["openWorldHint"] is True
    assert by_name["notes_create"].mcp_annotations()["openWorldHint"] is False


class Nested(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = Field(description="A label.")


class Loose(BaseModel):
    extra_things: dict[str, Any]
    when: str = Field(default="now", json_schema_extra={"format": "date-time"})
    nested: Nested | None = None


def test_checkers_reject_what_the_providers_reject() -> None:
    raw = Loose.model_json_schema()

    assert any("additionalProperties" in p for p in openai_strict_problems(raw))
    assert any("format" in p for p in openai_strict_problems(raw))
    assert any("$defs" in p or "$ref" in p for p in gemini_problems(raw))


def test_optional_fields_become_required_and_nullable_for_openai() -> None:
    schema = openai_strict_schema(Nested)
    loose = openai_strict_schema(Loose)

    assert schema == {
        "type": "object",
        "properties": {"label": {"type": "string", "description": "A label."}},
        "required": ["label"],
        "additionalProperties": False,
    }
    assert set(loose["required"]) == {"extra_things", "when", "nested"}
    assert {"type": "null"} in loose["properties"]["when"]["anyOf"]


def test_gemini_inlines_references_and_marks_nullable() -> None:
    schema = gemini_schema(Loose)

    nested = schema["properties"]["nested"]
    assert nested["nullable"] is True and nested["properties"]["label"]["type"] == "string"
    assert "$defs" not in schema


@pytest.mark.parametrize("name", ["", "a" * 65, "has space", "dotted.name", "slash/name"])
def test_bad_tool_names_are_refused(name: str) -> None:
    tool = ALL_TOOLS[0]

    with pytest.raises(ValueError, match="must match"):
        ToolSpec(
            name=name,
            description="x",
            input_model=tool.input_model,
            output_model=tool.output_model,
            handler=tool.handler,
            risk="read",
            scope="notes:read",
        )
