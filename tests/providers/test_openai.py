"""providers/openai.py against a local chat-completions stub, with the real langchain-openai
client over HTTP; and the network guard that keeps tests off the internet."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from providers import ModelSpecError, ProviderSettings, build_chat_model
from providers.openai import aclose_openai_model
from tests.stubs import netguard
from tests.stubs.openai_stub import OpenAIStub


class NotesSearch(BaseModel):
    """Search the user's notes."""

    query: str = Field(description="words to look for")
    limit: int = 5


@pytest.fixture(scope="module")
def running_stub() -> Iterator[OpenAIStub]:
    with OpenAIStub() as stub:
        yield stub


@pytest.fixture
def stub(running_stub: OpenAIStub) -> Iterator[OpenAIStub]:
    running_stub.reset()
    yield running_stub
    assert running_stub.pending == 0, "the test left scripted replies unused"


@pytest.fixture(params=["openai-compatible", "openai"])
async def chat_model(
    request: pytest.FixtureRequest, stub: OpenAIStub
) -> AsyncIterator[BaseChatModel]:
    """The same stub reached through both spec kinds."""
    if request.param == "openai":
        settings = ProviderSettings(
            openai_api_key="sk-test", openai_base_url=stub.base_url, max_retries=0
        )
        model = build_chat_model("openai:gpt-4o-mini", settings)
    else:
        model = build_chat_model(
            f"openai-compatible:stub-model@{stub.base_url}", ProviderSettings(max_retries=0)
        )
    yield model
    await aclose_openai_model(model)


@pytest.fixture
def guard() -> Iterator[None]:
    """The guard installed, whether or not the session conftest already did it."""
    already = netguard.installed()
    netguard.install()
    yield
    netguard.take_violations()
    if not already:
        netguard.uninstall()


def merge(chunks: list[Any]) -> AIMessageChunk:
    """The streamed chunks added up, as langchain aggregates them."""
    assert chunks and all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    merged: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


def sent_model(stub: OpenAIStub) -> str:
    return str(stub.requests[-1]["model"])


# --- building -----------------------------------------------------------------------------


def test_openai_spec_sends_model_and_key(stub: OpenAIStub) -> None:
    settings = ProviderSettings(openai_api_key="sk-test", openai_base_url=stub.base_url)
    stub.reply("hello")
    build_chat_model("openai:gpt-4o-mini", settings).invoke("hi")
    assert sent_model(stub) == "gpt-4o-mini"
    assert stub.request_headers[-1]["authorization"] == "Bearer sk-test"


def test_compatible_spec_needs_no_key(stub: OpenAIStub) -> None:
    stub.reply("hello")
    build_chat_model(f"openai-compatible:llama3@{stub.base_url}", ProviderSettings()).invoke("hi")
    assert sent_model(stub) == "llama3"
    assert stub.request_headers[-1]["authorization"] == "Bearer not-needed"


def test_settings_reach_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    settings = ProviderSettings(openai_api_key="sk-test", timeout_seconds=7.5, max_retries=4)
    model = build_chat_model("openai:gpt-4o-mini", settings)
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_base == "https://api.openai.com/v1"
    assert model.openai_api_key is not None
    assert model.openai_api_key.get_secret_value() == "sk-test"  # type: ignore[union-attr]
    assert (model.request_timeout, model.max_retries, model.stream_usage) == (7.5, 4, True)


def _provider_settings_from_env() -> ProviderSettings:
    """ProviderSettings exactly as a running system derives them from the environment."""
    from types import SimpleNamespace

    from runtime.settings import Settings
    from runtime.system import System

    derive = System.provider_settings.fget  # type: ignore[attr-defined]
    settings: ProviderSettings = derive(SimpleNamespace(settings=Settings()))
    return settings


def test_default_keys_from_the_environment_go_only_where_they_belong(
    stub: OpenAIStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``openai:`` deployments take OPENAI_API_KEY by default; an ``openai-compatible:``
    endpoint (another host) never gets it: no key, or RELAYGRAPH_COMPATIBLE_API_KEY."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-env-key")
    monkeypatch.setenv("RELAYGRAPH_OPENAI_BASE_URL", stub.base_url)
    monkeypatch.delenv("RELAYGRAPH_COMPATIBLE_API_KEY", raising=False)
    with OpenAIStub() as third_party:
        compatible = f"openai-compatible:llama3@{third_party.base_url}"
        stub.reply("from openai")
        third_party.reply("from the third party")
        settings = _provider_settings_from_env()
        build_chat_model("openai:gpt-4o-mini", settings).invoke("hi")
        build_chat_model(compatible, settings).invoke("hi")
        assert stub.request_headers[-1]["authorization"] == "Bearer sk-openai-env-key"
        assert third_party.request_headers[-1]["authorization"] == "Bearer not-needed"

        monkeypatch.setenv("RELAYGRAPH_COMPATIBLE_API_KEY", "ck-third-party-key")
        third_party.reply("with its own key")
        build_chat_model(compatible, _provider_settings_from_env()).invoke("hi")
        assert third_party.request_headers[-1]["authorization"] == "Bearer ck-third-party-key"
        sent = [h["authorization"] for h in third_party.request_headers]
    assert all("sk-openai-env-key" not in header for header in sent)


def test_openai_spec_without_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with pytest.raises(ModelSpecError, match="OPENAI_API_KEY"):
        build_chat_model("openai:gpt-4o-mini", ProviderSettings())


@pytest.mark.parametrize(
    "spec",
    [
        "gpt-4o-mini",
        "openai:",
        "anthropic:claude",
        "openai-compatible:llama3",
        "openai-compatible:@http://127.0.0.1:11434/v1",
        "openai-compatible:llama3@127.0.0.1:11434/v1",
    ],
)
def test_malformed_specs_are_refused(spec: str) -> None:
    with pytest.raises(ModelSpecError, match="model spec"):
        build_chat_model(spec, ProviderSettings(openai_api_key="sk-test"))


# --- talking to the stub ------------------------------------------------------------------


def test_invoke(chat_model: BaseChatModel, stub: OpenAIStub) -> None:
    stub.reply("Hello there.", usage={"prompt_tokens": 7, "completion_tokens": 3})
    message = chat_model.invoke([HumanMessage("hi")])
    assert message.content == "Hello there."
    assert stub.requests[-1]["messages"] == [{"role": "user", "content": "hi"}]
    assert isinstance(message, AIMessage) and message.usage_metadata is not None
    usage = message.usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (7, 3, 10)


async def test_ainvoke(chat_model: BaseChatModel, stub: OpenAIStub) -> None:
    stub.reply("async hello")
    message = await chat_model.ainvoke("hi")
    assert message.content == "async hello"
    assert not stub.requests[-1].get("stream")


async def test_astream_joins_to_the_content(chat_model: BaseChatModel, stub: OpenAIStub) -> None:
    text = "The quick brown fox\njumps over the lazy dog. "
    stub.reply(text, usage={"prompt_tokens": 12, "completion_tokens": 9})
    chunks = [chunk async for chunk in chat_model.astream("tell me")]
    assert len([c for c in chunks if c.content]) > 5
    assert "".join(str(chunk.content) for chunk in chunks) == text
    merged = merge(chunks)
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["total_tokens"] == 21
    body = stub.requests[-1]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_tool_call_and_schema(chat_model: BaseChatModel, stub: OpenAIStub) -> None:
    stub.reply(tool_calls=[{"name": "NotesSearch", "args": {"query": "launch", "limit": 3}}])
    message = chat_model.bind_tools([NotesSearch]).invoke("find launch notes")
    assert isinstance(message, AIMessage)
    assert message.tool_calls == [
        {
            "name": "NotesSearch",
            "args": {"query": "launch", "limit": 3},
            "id": "call_1_0",
            "type": "tool_call",
        }
    ]
    (tool,) = stub.requests[-1]["tools"]
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "NotesSearch"
    assert tool["function"]["description"] == "Search the user's notes."
    parameters = tool["function"]["parameters"]
    assert parameters["required"] == ["query"]
    assert parameters["properties"]["limit"] == {"default": 5, "type": "integer"}


async def test_streamed_tool_calls(chat_model: BaseChatModel, stub: OpenAIStub) -> None:
    calls = [
        {"name": "NotesSearch", "args": {"query": "quarterly launch plan", "limit": 2}},
        {"name": "NotesSearch", "args": {"query": "budget"}, "id": "call_budget"},
    ]
    stub.reply("Searching.", tool_calls=calls)
    chunks = [chunk async for chunk in chat_model.bind_tools([NotesSearch]).astream("find")]
    merged = merge(chunks)
    assert merged.content == "Searching."
    assert [(c["name"], c["args"], c["id"]) for c in merged.tool_calls] == [
        ("NotesSearch", {"query": "quarterly launch plan", "limit": 2}, "call_1_0"),
        ("NotesSearch", {"query": "budget"}, "call_budget"),
    ]
    assert sum(1 for chunk in chunks if getattr(chunk, "tool_call_chunks", None)) > 4


def test_tool_results_are_sent_back(chat_model: BaseChatModel, stub: OpenAIStub) -> None:
    stub.reply("Found one note.")
    call = {"name": "NotesSearch", "args": {"query": "launch"}, "id": "call_7"}
    chat_model.invoke(
        [
            HumanMessage("find launch notes"),
            AIMessage("", tool_calls=[call]),
            ToolMessage('{"notes": []}', tool_call_id="call_7", name="NotesSearch"),
        ]
    )
    _user, assistant, tool = stub.requests[-1]["messages"]
    assert assistant["tool_calls"][0]["id"] == "call_7"
    assert assistant["tool_calls"][0]["function"]["name"] == "NotesSearch"
    assert tool == {"role": "tool", "content": '{"notes": []}', "tool_call_id": "call_7"}


def test_server_error_surfaces(chat_model: BaseChatModel, stub: OpenAIStub) -> None:
    stub.fail(500, "upstream exploded")
    with pytest.raises(openai.InternalServerError, match="upstream exploded"):
        chat_model.invoke("hi")
    assert len(stub.requests) == 1


async def test_rate_limit_surfaces_while_streaming(
    chat_model: BaseChatModel, stub: OpenAIStub
) -> None:
    stub.fail(429, "slow down", type="rate_limit_error", code="rate_limit_exceeded")
    with pytest.raises(openai.RateLimitError, match="slow down"):
        async for _ in chat_model.astream("hi"):
            pass


def test_empty_queue_answers_with_an_error(chat_model: BaseChatModel, stub: OpenAIStub) -> None:
    with pytest.raises(openai.InternalServerError, match="no scripted reply left"):
        chat_model.invoke("hi")


# --- the network guard --------------------------------------------------------------------


@pytest.mark.usefixtures("guard")
def test_guard_refuses_remote_hosts() -> None:
    with pytest.raises(RuntimeError, match=r"network guard: .*203\.0\.113\.5:443"):
        socket.create_connection(("203.0.113.5", 443), timeout=1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(netguard.NetworkGuardError, match=r"203\.0\.113\.5:443"):
            sock.connect(("203.0.113.5", 443))
        with pytest.raises(netguard.NetworkGuardError):
            sock.connect_ex(("203.0.113.5", 443))
    with pytest.raises(netguard.NetworkGuardError, match=r"example\.com:443"):
        socket.getaddrinfo("example.com", 443)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
        with pytest.raises(netguard.NetworkGuardError):
            sock.connect(("2001:db8::1", 443, 0, 0))
    assert len(netguard.take_violations()) == 5


@pytest.mark.usefixtures("guard")
async def test_guard_refuses_remote_hosts_from_asyncio() -> None:
    with pytest.raises(netguard.NetworkGuardError, match=r"203\.0\.113\.5:443"):
        await asyncio.open_connection("203.0.113.5", 443)


@pytest.mark.usefixtures("guard")
def test_guard_allows_loopback(stub: OpenAIStub) -> None:
    port = int(stub.base_url.split(":")[2].split("/")[0])
    for host in ("127.0.0.1", "localhost"):
        with socket.create_connection((host, port), timeout=5):
            pass
    assert socket.getaddrinfo("localhost", port)
    netguard.install()  # idempotent
    assert netguard.take_violations() == []


@pytest.mark.usefixtures("guard")
def test_guard_stops_a_real_model_request() -> None:
    settings = ProviderSettings(openai_api_key="sk-test", max_retries=0)
    with pytest.raises(netguard.NetworkGuardError, match=r"api\.openai\.com:443"):
        build_chat_model("openai:gpt-4o-mini", settings).invoke("hi")
    assert any("api.openai.com:443" in v for v in netguard.take_violations())


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        (None, True),
        ("10.0.0.1", False),
        ("203.0.113.5", False),
        ("api.openai.com", False),
    ],
)
def test_guard_knows_local_hosts(host: str | None, local: bool) -> None:
    assert netguard.is_local(host) is local
