"""providers/websearch.py and the router's ``web_search`` flag against the local stubs:
OpenAI's Responses API with the built-in ``web_search`` tool (``web_search_call`` item,
``url_citation`` annotations) and Gemini's ``google_search`` grounding
(``groundingMetadata``), normalised to one citation shape and a "search used" flag."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from providers.errors import NoCapableDeployment
from providers.factory import ProviderSettings, build_router
from providers.router import CallInfo, RouterChatModel, RouterServices
from providers.websearch import citations, normalise_search_answer, search_used
from tests.stubs.gemini_stub import GeminiStub
from tests.stubs.openai_stub import OpenAIStub

ANSWER = "Paris is the capital of France. It has 2.1 million residents."
SOURCES = [
    {"url": "https://example.org/paris", "title": "Paris", "cited": "Paris is the capital"},
    {"url": "https://example.org/census", "title": "Census", "cited": "2.1 million residents"},
]
EXPECTED = [
    {"title": "Paris", "url": "https://example.org/paris", "snippet": "Paris is the capital"},
    {"title": "Census", "url": "https://example.org/census", "snippet": "2.1 million residents"},
]


@pytest.fixture(scope="module")
def stubs() -> Iterator[tuple[OpenAIStub, GeminiStub]]:
    with OpenAIStub() as openai_stub, GeminiStub() as gemini_stub:
        yield openai_stub, gemini_stub


@pytest.fixture
def fresh(stubs: tuple[OpenAIStub, GeminiStub]) -> Iterator[tuple[OpenAIStub, GeminiStub]]:
    for stub in stubs:
        stub.reset()
    yield stubs
    assert all(stub.pending == 0 for stub in stubs), "unused scripted replies"


def _router(stubs: tuple[OpenAIStub, GeminiStub], specs: list[Any]) -> RouterChatModel:
    openai_stub, gemini_stub = stubs
    settings = ProviderSettings(
        openai_api_key="sk-test",
        openai_base_url=openai_stub.base_url,
        google_api_key="g-test",
        google_base_url=gemini_stub.base_url,
        timeout_seconds=10.0,
    )
    return build_router(
        "search", {"search": specs}, settings, services=RouterServices(attempt_timeout_seconds=10)
    )


async def _ask(router: Any, *, streaming: bool, via_call_info: bool = False) -> Any:
    """Ask the capital question with web search on, streamed or not, and close the router.

    `via_call_info` asks through `CallInfo` (how graph nodes ask) instead of the keyword."""
    question = [HumanMessage("What is the capital of France?")]
    try:
        if streaming:
            chunks = [c async for c in router.astream(question, web_search=True)]
            reply: Any = chunks[0]
            for chunk in chunks[1:]:
                reply = reply + chunk
            return reply
        if via_call_info:
            return await router.ainvoke(question, call=CallInfo(web_search=True))
        return await router.ainvoke(question, web_search=True)
    finally:
        await router.aclose()


@pytest.mark.parametrize("streaming", [False, True])
async def test_openai_searches_through_the_responses_api(
    streaming: bool, fresh: tuple[OpenAIStub, GeminiStub]
) -> None:
    openai_stub, _ = fresh
    router = _router(fresh, ["openai:gpt-4o-mini"])
    openai_stub.reply(ANSWER, citations=SOURCES, search_query="capital of France")
    reply = await _ask(router, streaming=streaming)
    body = openai_stub.requests[-1]
    assert "input" in body and "messages" not in body  # the Responses API, not chat
    assert {"type": "web_search"} in body["tools"]
    assert reply.content == ANSWER  # plain text: portable to any provider's next turn
    assert search_used(reply)
    assert citations(reply) == EXPECTED
    assert reply.response_metadata["web_search"]["queries"] == ["capital of France"]
    assert reply.usage_metadata["input_tokens"] == 10


@pytest.mark.parametrize("streaming", [False, True])
async def test_gemini_searches_with_google_search_grounding(
    streaming: bool, fresh: tuple[OpenAIStub, GeminiStub]
) -> None:
    _, gemini_stub = fresh
    router = _router(fresh, ["google:gemini-2.5-flash"])
    gemini_stub.reply(ANSWER, citations=SOURCES, search_query="capital of France")
    reply = await _ask(router, streaming=streaming, via_call_info=True)
    assert gemini_stub.requests[-1].body["tools"] == [{"googleSearch": {}}]
    assert reply.content == ANSWER
    assert search_used(reply) and citations(reply) == EXPECTED
    assert reply.response_metadata["web_search"]["queries"] == ["capital of France"]


async def test_search_calls_go_only_where_search_is_offered(
    fresh: tuple[OpenAIStub, GeminiStub],
) -> None:
    openai_stub, gemini_stub = fresh
    # gpt-4.1-nano has no web search in the catalog: skipped although it comes first.
    router = _router(fresh, ["openai:gpt-4.1-nano", "google:gemini-2.5-flash"])
    gemini_stub.reply(ANSWER, citations=SOURCES)
    openai_stub.reply("no search needed")
    try:
        reply = await router.ainvoke([HumanMessage("q")], web_search=True)
        assert reply.response_metadata["relaygraph"]["deployment"] == "google:gemini-2.5-flash"
        assert openai_stub.requests == []
        plain = await router.ainvoke([HumanMessage("q")])  # no flag: the first deployment
        assert plain.text == "no search needed" and not search_used(plain)
        assert "tools" not in openai_stub.requests[-1]
    finally:
        await router.aclose()

    nano = _router(fresh, ["openai:gpt-4.1-nano", {"spec": "openai:gpt-4o", "web_search": False}])
    with pytest.raises(NoCapableDeployment, match="no web search"):
        await nano.ainvoke([HumanMessage("q")], web_search=True)
    await nano.aclose()


async def test_an_answer_without_a_search_is_marked_unused(
    fresh: tuple[OpenAIStub, GeminiStub],
) -> None:
    """The model may decide not to search: nothing to taint, no citations."""
    _, gemini_stub = fresh
    router = _router(fresh, ["google:gemini-2.5-flash"])
    gemini_stub.reply("I know this one.")
    try:
        reply = await router.ainvoke([HumanMessage("2+2?")], web_search=True)
    finally:
        await router.aclose()
    assert reply.response_metadata["web_search"] == {"used": False, "queries": [], "citations": []}
    assert not search_used(reply)


def test_normalising_keeps_unrelated_messages_unmarked() -> None:
    assert not search_used(AIMessage("plain")) and citations(AIMessage("plain")) == []
    blocks = AIMessage(
        [
            {"type": "web_search_call", "id": "ws", "action": {"query": "q"}},
            {"type": "text", "text": "a", "annotations": []},
            {"type": "text", "text": "b"},
        ]
    )
    normalised = normalise_search_answer(blocks)
    assert normalised.content == "ab" and search_used(normalised)
    assert normalised.response_metadata["web_search"]["queries"] == ["q"]
