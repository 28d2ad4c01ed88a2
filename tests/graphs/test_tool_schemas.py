"""graphs/tool_schemas.py: models receive OpenAI strict function schemas, and Gemini
valid declarations, as the requests the local provider stubs received show."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from graphs.tool_schemas import tool_definitions
from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from tests.stubs.gemini_stub import GeminiStub
from tools.schemas import gemini_problems, openai_strict_problems


def _model_properties(system: Any, name: str) -> set[str]:
    tool = system.tools.get(name)
    return set(tool.input_model.model_json_schema().get("properties", {}))


async def test_openai_requests_carry_strict_function_schemas(data_dir: Path, openai_stub) -> None:  # type: ignore[no-untyped-def]
    openai_stub.reply(content="nothing to do")
    settings = Settings(
        data_dir=data_dir,
        model=f"openai-compatible:stub-model@{openai_stub.base_url}",
        model_max_retries=0,
    )
    async with open_system(settings) as system:
        summary = await Runner(system).run(RunRequest(principal=local_principal(), input_text="hi"))
        assert summary.final_message == "nothing to do"
        (request,) = openai_stub.requests
        sent = {tool["function"]["name"]: tool for tool in request["tools"]}
        assert {"notes_create", "notes_update", "tickets_close", "files_write"} <= set(sent)
        for name, tool in sent.items():
            assert tool["type"] == "function"
            function = tool["function"]
            assert function["strict"] is True, name
            assert openai_strict_problems(function["parameters"]) == [], name
            # No property lost on the way (a field named like a keyword, e.g. "title").
            assert set(function["parameters"]["properties"]) == _model_properties(system, name)

    update = sent["notes_update"]["function"]["parameters"]
    assert set(update["required"]) == set(update["properties"])
    assert {"type": "null"} in update["properties"]["body"]["anyOf"]  # optional → nullable
    create = sent["notes_create"]["function"]["parameters"]["properties"]
    assert "maxLength" not in create["title"] and "500 characters" in create["title"]["description"]


@pytest.fixture
def gemini_stub() -> Iterator[GeminiStub]:
    with GeminiStub() as stub:
        yield stub


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


async def test_gemini_requests_carry_gemini_valid_declarations(
    data_dir: Path, gemini_stub: GeminiStub
) -> None:
    gemini_stub.reply("nothing to do")
    settings = Settings(
        data_dir=data_dir,
        model="google:gemini-stub",
        google_api_key="AIza-test-key-0000000000",
        google_base_url=gemini_stub.base_url,
        model_max_retries=0,
    )
    async with open_system(settings) as system:
        summary = await Runner(system).run(RunRequest(principal=local_principal(), input_text="hi"))
        assert summary.final_message == "nothing to do"
        (request,) = gemini_stub.requests
        declarations = {
            declaration["name"]: declaration
            for tool in request.body["tools"]
            for declaration in tool.get("functionDeclarations", [])
        }
        assert {"notes_create", "notes_update", "tickets_close"} <= set(declarations)
        for name, declaration in declarations.items():
            parameters = declaration["parameters"]
            assert set(parameters["properties"]) == _model_properties(system, name), name
            for node in _walk(parameters):
                assert not {"additionalProperties", "anyOf", "$ref", "$defs"} & set(node), name
                assert str(node.get("type", "")).lower() != "null", name
    body = declarations["notes_update"]["parameters"]["properties"]["body"]
    assert body["nullable"] is True and body["type"].lower() == "string"
    assert "body" not in declarations["notes_update"]["parameters"].get("required", [])


def test_definitions_are_built_once_and_valid_for_both_providers(system: Any) -> None:
    names = system.tools.names()
    first = tool_definitions(system.tools, names)
    second = tool_definitions(system.tools, names)

    assert [a is b for a, b in zip(first, second, strict=True)] == [True] * len(names)
    for definition in first:
        openai = definition.for_provider("openai")
        google = definition.for_provider("google")
        assert openai_strict_problems(openai["function"]["parameters"]) == []
        assert gemini_problems(definition.gemini) == []
        assert "strict" not in google["function"]
        assert google is not definition.for_provider("google")  # langchain edits it
