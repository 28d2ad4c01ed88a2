"""providers/tokens.py ``fit_or_summarise`` and the router's use of it: older turns are
summarised (not just dropped) when trimming alone would lose too much, tool calls stay
with their results, and the summary comes from the cheapest deployment or, offline, the
deterministic extractive summariser."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from providers.factory import ProviderSettings, build_router
from providers.router import RouterServices
from providers.tokens import (
    SUMMARY_PREFIX,
    estimate_tokens,
    extractive_summary,
    fit_messages,
    fit_or_summarise,
)


def _conversation(turns: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = [SystemMessage("You are a travel agent.")]
    messages.append(HumanMessage("Book me a trip to Lisbon in May for two people. Budget 900 EUR."))
    for n in range(turns):
        call_id = f"c{n}"
        messages += [
            HumanMessage(f"Question {n}: what about option {n}? " + "details " * 30),
            AIMessage("", tool_calls=[{"name": "search_flights", "args": {"n": n}, "id": call_id}]),
            ToolMessage(f"Flight {n} costs {100 + n} EUR. " + "info " * 30, tool_call_id=call_id),
            AIMessage(f"Option {n} costs {100 + n} EUR. " + "words " * 20),
        ]
    messages.append(HumanMessage("Which option is cheapest?"))
    return messages


def _no_orphans(messages: list[BaseMessage]) -> None:
    """Every tool result follows the AI message that called it."""
    open_calls: set[str] = set()
    for message in messages:
        if isinstance(message, AIMessage):
            open_calls = {c["id"] for c in message.tool_calls if c["id"]}
        elif isinstance(message, ToolMessage):
            assert message.tool_call_id in open_calls, f"orphan result {message.tool_call_id}"


def _summary(messages: list[BaseMessage]) -> SystemMessage | None:
    found = [m for m in messages if "relaygraph_summary" in m.response_metadata]
    assert len(found) <= 1
    return found[0] if found else None  # type: ignore[return-value]


async def test_a_small_trim_is_not_summarised() -> None:
    messages = _conversation(6)
    budget = estimate_tokens(messages) - 40  # drops about one turn
    fitted = await fit_or_summarise(messages, budget)
    assert fitted == fit_messages(messages, budget)
    assert fitted is not None and _summary(fitted) is None


async def test_a_large_trim_keeps_a_summary_and_whole_tool_pairs() -> None:
    messages = _conversation(8)
    budget = estimate_tokens(messages) // 3
    fitted = await fit_or_summarise(messages, budget)
    assert fitted is not None
    assert estimate_tokens(fitted) <= budget
    assert fitted[0] == messages[0]  # the system prompt stays first
    summary = _summary(fitted)
    assert summary is not None and fitted[1] is summary
    text = str(summary.content)
    assert text.startswith(SUMMARY_PREFIX)
    assert "Lisbon" in text  # the original request survives in the summary
    assert fitted[-1] == messages[-1]
    kept = fitted[2:]
    assert kept == messages[len(messages) - len(kept) :]  # the newest turns, unchanged
    _no_orphans(fitted)
    assert not isinstance(kept[0], ToolMessage)
    assert summary.response_metadata["relaygraph_summary"] == len(messages) - 1 - len(kept)


async def test_a_custom_summariser_gets_the_dropped_turns_and_failures_fall_back() -> None:
    messages = _conversation(8)
    budget = estimate_tokens(messages) // 3
    seen: list[list[BaseMessage]] = []

    async def summarise(dropped: list[BaseMessage], max_tokens: int) -> str:
        seen.append(dropped)
        assert max_tokens > 0
        return "They want Lisbon in May; options 0-3 cost 100-103 EUR."

    fitted = await fit_or_summarise(messages, budget, summariser=summarise)
    assert fitted is not None and "options 0-3" in str(fitted[1].content)
    assert seen[0][0] == messages[1]  # the original request is among the dropped turns
    dropped = seen[0]
    assert messages[0] not in dropped
    assert dropped + fitted[2:] == messages[1:]  # dropped + kept = the whole conversation

    async def broken(dropped: list[BaseMessage], max_tokens: int) -> str:
        raise RuntimeError("summariser down")

    fallback = await fit_or_summarise(messages, budget, summariser=broken)
    assert fallback == await fit_or_summarise(messages, budget)  # extractive, deterministic


async def test_extractive_summary_is_bounded_and_deterministic() -> None:
    dropped = _conversation(20)[1:-1]
    first = await extractive_summary(dropped, 120)
    assert first == await extractive_summary(dropped, 120)
    assert estimate_tokens([HumanMessage(first)]) <= 130
    assert first.splitlines()[0].startswith("- human: Book me a trip to Lisbon")
    assert "more message(s)" in first
    assert "search_flights" in await extractive_summary(dropped, 2000)


async def test_the_router_summarises_with_its_cheapest_deployment(openai_stub: Any) -> None:
    """A small context window forces the summary; the summary call and the answer both
    reach the stub, the summary first, and the answer's prompt carries it."""
    spec = {
        "spec": f"openai-compatible:m@{openai_stub.base_url}",
        "context_window": 1200,
        "max_output_tokens": 200,
    }
    router = build_router(
        "small",
        {"small": [spec]},
        ProviderSettings(),
        services=RouterServices(summarise_with_model=True),
    )
    messages = _conversation(10)
    assert estimate_tokens(messages) > 2000
    openai_stub.reply("Lisbon trip for two in May, options 0-5 priced 100-105 EUR.")
    openai_stub.reply("Option 0 is cheapest.")
    try:
        reply = await router.ainvoke(messages)
    finally:
        await router.aclose()
    assert reply.text == "Option 0 is cheapest."
    summary_request, answer_request = openai_stub.requests
    assert "Summarise this earlier part" in summary_request["messages"][0]["content"]
    sent = answer_request["messages"]
    assert sent[0]["content"] == "You are a travel agent."
    assert sent[1]["role"] == "system" and "options 0-5 priced" in sent[1]["content"]
    assert sent[-1]["content"] == "Which option is cheapest?"
    ids = [m.get("tool_call_id") for m in sent if m["role"] == "tool"]
    called = [c["id"] for m in sent if m["role"] == "assistant" for c in m.get("tool_calls", [])]
    assert ids == called  # every result with its call


async def test_the_router_summarises_offline_by_default(openai_stub: Any) -> None:
    spec = {
        "spec": f"openai-compatible:m@{openai_stub.base_url}",
        "context_window": 1200,
        "max_output_tokens": 200,
    }
    router = build_router("small", {"small": [spec]}, ProviderSettings())
    openai_stub.reply("Option 0.")
    try:
        await router.ainvoke(_conversation(10))
    finally:
        await router.aclose()
    (request,) = openai_stub.requests  # no model call for the summary
    assert SUMMARY_PREFIX in request["messages"][1]["content"]
    assert "Lisbon" in request["messages"][1]["content"]
