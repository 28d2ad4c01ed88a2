"""providers/google.py against a local Gemini stub, with the real langchain-google-genai
client (and google-genai under it) over HTTP."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langchain_core.exceptions import ModelAPIError, ModelRateLimitError
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from pydantic import BaseModel, Field

from providers import ModelSpecError, ProviderSettings, build_chat_model, parse_spec
from providers.google import aclose_google_model
from tests.stubs.gemini_stub import GeminiStub

GOOGLE_ENV = (
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_USE_ENTERPRISE",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_CLOUD_PROJECT",
)


class NotesSearch(BaseModel):
    """Search the user's notes."""

    query: str = Field(description="words to look for")
    limit: int = 5


@pytest.fixture(scope="session")
def _gemini_stub_server() -> Iterator[GeminiStub]:
    with GeminiStub() as stub:
        yield stub


@pytest.fixture
def stub(_gemini_stub_server: GeminiStub, monkeypatch: pytest.MonkeyPatch) -> Iterator[GeminiStub]:
    for name in GOOGLE_ENV:
        monkeypatch.delenv(name, raising=False)
    _gemini_stub_server.reset()
    yield _gemini_stub_server
    assert _gemini_stub_server.pending == 0, "the test left scripted replies unused"


def settings_for(stub: GeminiStub, **overrides: Any) -> ProviderSettings:
    values: dict[str, Any] = {
        "google_api_key": "settings-key",
        "google_base_url": stub.base_url,
        "max_retries": 0,
    }
    return ProviderSettings(**{**values, **overrides})


@pytest.fixture
async def chat_model(stub: GeminiStub) -> AsyncIterator[BaseChatModel]:
    model = build_chat_model("google:gemini-2.5-flash", settings_for(stub))
    yield model
    await aclose_google_model(model)


def merge(chunks: list[Any]) -> AIMessageChunk:
    assert chunks and all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    merged: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


def test_google_spec_parses() -> None:
    spec = parse_spec("google:gemini-2.5-flash")
    assert (spec.kind, spec.target, str(spec)) == (
        "google",
        "gemini-2.5-flash",
        "google:gemini-2.5-flash",
    )


def test_missing_key_is_a_spec_error(stub: GeminiStub) -> None:
    with pytest.raises(ModelSpecError, match="GOOGLE_API_KEY"):
        build_chat_model("google:gemini-2.5-flash", ProviderSettings())


def test_key_in_environment_is_not_used(stub: GeminiStub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "env-key")
    monkeypatch.setenv("GEMINI_API_KEY", "env-key-2")
    with pytest.raises(ModelSpecError, match="GOOGLE_API_KEY"):
        build_chat_model("google:gemini-2.5-flash", ProviderSettings())


def test_invoke(chat_model: BaseChatModel, stub: GeminiStub) -> None:
    stub.reply("Hello from Gemini.", usage={"promptTokenCount": 12, "candidatesTokenCount": 4})
    message = chat_model.invoke("hi")
    assert isinstance(message, AIMessage)
    assert message.content == "Hello from Gemini."
    assert message.response_metadata["finish_reason"] == "STOP"
    assert message.usage_metadata is not None
    usage = message.usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (12, 4, 16)
    (request,) = stub.requests
    assert (request.model, request.method) == ("gemini-2.5-flash", "generateContent")
    assert request.body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert request.headers["x-goog-api-key"] == "settings-key"


async def test_ainvoke(chat_model: BaseChatModel, stub: GeminiStub) -> None:
    stub.reply("Async hello.")
    message = await chat_model.ainvoke("hi")
    assert message.content == "Async hello."
    assert stub.requests[0].headers["x-goog-api-key"] == "settings-key"


async def test_astream_chunks_concatenate(chat_model: BaseChatModel, stub: GeminiStub) -> None:
    stub.reply(
        "The quick brown fox jumps.", usage={"promptTokenCount": 7, "candidatesTokenCount": 6}
    )
    chunks = [chunk async for chunk in chat_model.astream("tell me")]
    assert len(chunks) >= 5
    merged = merge(chunks)
    assert merged.content == "The quick brown fox jumps."
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["input_tokens"] == 7
    assert merged.usage_metadata["output_tokens"] == 6
    (request,) = stub.requests
    assert (request.method, request.query) == ("streamGenerateContent", {"alt": "sse"})


def test_tool_call_and_declarations(chat_model: BaseChatModel, stub: GeminiStub) -> None:
    stub.reply(function_calls=[{"name": "NotesSearch", "args": {"query": "launch", "limit": 3}}])
    message = chat_model.bind_tools([NotesSearch]).invoke("find launch notes")
    assert isinstance(message, AIMessage)
    (call,) = message.tool_calls
    assert (call["name"], call["args"], call["type"]) == (
        "NotesSearch",
        {"query": "launch", "limit": 3},
        "tool_call",
    )
    assert call["id"]
    (tool,) = stub.requests[-1].body["tools"]
    (declaration,) = tool["functionDeclarations"]
    assert declaration["name"] == "NotesSearch"
    assert declaration["description"] == "Search the user's notes."
    assert declaration["parameters"]["required"] == ["query"]
    assert set(declaration["parameters"]["properties"]) == {"query", "limit"}


async def test_streamed_tool_call(chat_model: BaseChatModel, stub: GeminiStub) -> None:
    stub.reply(
        "Searching.",
        function_calls=[{"name": "NotesSearch", "args": {"query": "budget"}, "id": "call_9"}],
    )
    chunks = [chunk async for chunk in chat_model.bind_tools([NotesSearch]).astream("find")]
    merged = merge(chunks)
    assert merged.content == "Searching."
    assert [(c["name"], c["args"], c["id"]) for c in merged.tool_calls] == [
        ("NotesSearch", {"query": "budget"}, "call_9")
    ]


def test_server_error_surfaces_without_retry(chat_model: BaseChatModel, stub: GeminiStub) -> None:
    stub.fail(500, "upstream exploded")
    with pytest.raises(ModelAPIError, match="upstream exploded"):
        chat_model.invoke("hi")
    assert len(stub.requests) == 1


async def test_rate_limit_surfaces_while_streaming(
    chat_model: BaseChatModel, stub: GeminiStub
) -> None:
    stub.fail(429, "quota exceeded")
    with pytest.raises(ModelRateLimitError, match="quota exceeded"):
        async for _ in chat_model.astream("hi"):
            pass
    assert len(stub.requests) == 1


def test_retries_follow_settings(stub: GeminiStub) -> None:
    model = build_chat_model("google:gemini-2.5-flash", settings_for(stub, max_retries=1))
    stub.fail(503, "busy")
    stub.reply("Second time lucky.")
    assert model.invoke("hi").content == "Second time lucky."
    assert len(stub.requests) == 2


async def test_environment_is_neither_read_nor_written(
    stub: GeminiStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "env-key")
    monkeypatch.setenv("GEMINI_API_KEY", "env-key-2")
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://203.0.113.5")
    before = dict(os.environ)
    model = build_chat_model("google:gemini-2.5-flash", settings_for(stub))
    try:
        stub.reply("sync")
        stub.reply("async")
        stub.reply("streamed")
        assert model.invoke("a").content == "sync"
        assert (await model.ainvoke("b")).content == "async"
        assert merge([chunk async for chunk in model.astream("c")]).content == "streamed"
    finally:
        await aclose_google_model(model)
    assert dict(os.environ) == before
    assert [request.headers["x-goog-api-key"] for request in stub.requests] == ["settings-key"] * 3
    assert [request.model for request in stub.requests] == ["gemini-2.5-flash"] * 3


async def test_aclose_is_safe_for_other_models() -> None:
    model = build_chat_model("scripted:providers.scripted:demo_turn", ProviderSettings())
    await aclose_google_model(model)
