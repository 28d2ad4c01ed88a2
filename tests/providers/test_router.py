"""providers/router.py: the fault matrix against the local OpenAI- and Gemini-compatible
stubs with the real client libraries (langchain-openai, langchain-google-genai): each case
ends in a correct fallback answer or a clear error, with usage rows and breaker state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from sqlalchemy import select

from providers.errors import AllDeploymentsFailed, NoCapableDeployment, StreamInterrupted
from providers.factory import ProviderSettings, build_router
from providers.retry import RetryPolicy
from providers.router import CallInfo, RouterChatModel, RouterServices
from providers.usage import UsageRecorder
from store import Database, migrate
from store.models import ProviderUsage
from tests.stubs.gemini_stub import GeminiStub
from tests.stubs.openai_stub import OpenAIStub

ATTEMPT_TIMEOUT = 1.0
"""Per attempt; a slow stub answers after 5 s. The first call of a process pays for lazy
imports and client set-up, so the module fixture makes one call through each library."""
CALL = CallInfo(tenant="acme", user="ann", run_id="run-1", node="model", prompt_name="agent")


@pytest.fixture(scope="module")
def stubs() -> Iterator[tuple[OpenAIStub, GeminiStub]]:
    with OpenAIStub() as openai_stub, GeminiStub() as gemini_stub:
        warm = make_router(
            (openai_stub, gemini_stub), ["openai:gpt-4o-mini", "google:gemini-2.5-flash"], None
        )
        warm.services.attempt_timeout_seconds = 30.0
        openai_stub.reply("warm")
        gemini_stub.reply("warm")
        asyncio.run(_warm_up(warm))
        yield openai_stub, gemini_stub


async def _warm_up(router: RouterChatModel) -> None:
    await router.ainvoke([HumanMessage("warm up")])
    router.deployments.reverse()
    await router.ainvoke([HumanMessage("warm up")])
    await router.aclose()


@dataclass
class Side:
    """One provider behind the router, scripted through its stub's own API."""

    kind: str
    stub: OpenAIStub | GeminiStub

    @property
    def spec(self) -> str:
        return "openai:gpt-4o-mini" if self.kind == "openai" else "google:gemini-2.5-flash"

    def answer(self, text: str, **extra: Any) -> None:
        if isinstance(self.stub, OpenAIStub):
            self.stub.reply(text, **extra)
        else:
            self.stub.reply(text, **extra)

    def fail(self, status: int, retry_after: float | None = None) -> None:
        self.stub.fail(status, retry_after=retry_after)

    def bad_tool_call(self) -> None:
        if isinstance(self.stub, OpenAIStub):
            self.stub.reply(tool_calls=[{"name": "notes_search", "raw_arguments": '{"q": '}])
        else:
            self.stub.reply(function_calls=[{"name": "notes_search", "args": '{"q": '}])


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}"
    migrate(url)
    database = Database(url)
    yield database
    await database.dispose()


@pytest.fixture(params=["openai", "google"])
def sides(
    request: pytest.FixtureRequest, stubs: tuple[OpenAIStub, GeminiStub]
) -> Iterator[tuple[Side, Side]]:
    """(primary, fallback): each provider takes its turn at failing."""
    openai_stub, gemini_stub = stubs
    openai_stub.reset()
    gemini_stub.reset()
    pair = (Side("openai", openai_stub), Side("google", gemini_stub))
    yield pair if request.param == "openai" else (pair[1], pair[0])
    assert openai_stub.pending == 0 and gemini_stub.pending == 0, "unused scripted replies"


def make_router(
    stubs: tuple[OpenAIStub, GeminiStub],
    specs: list[Any],
    recorder: UsageRecorder | None,
    *,
    failures: int = 5,
    max_retries: int = 1,
) -> RouterChatModel:
    openai_stub, gemini_stub = stubs
    settings = ProviderSettings(
        openai_api_key="sk-test",
        openai_base_url=openai_stub.base_url,
        google_api_key="g-test",
        google_base_url=gemini_stub.base_url,
        timeout_seconds=5.0,
    )
    services = RouterServices(
        recorder=recorder,
        retry=RetryPolicy(max_retries=max_retries, base_seconds=0.01, max_seconds=2.0),
        attempt_timeout_seconds=ATTEMPT_TIMEOUT,
    )
    return build_router(
        "smart", {"smart": specs}, settings, services=services, failure_threshold=failures
    )


@pytest.fixture
async def routed(
    stubs: tuple[OpenAIStub, GeminiStub], sides: tuple[Side, Side], db: Database
) -> AsyncIterator[tuple[RouterChatModel, UsageRecorder]]:
    recorder = UsageRecorder(db)
    router = make_router(stubs, [sides[0].spec, sides[1].spec], recorder)
    yield router, recorder
    await router.aclose()
    await recorder.aclose()


async def usage_rows(recorder: UsageRecorder) -> list[ProviderUsage]:
    await recorder.flush()
    async with recorder.db.session() as session:
        rows = await session.execute(select(ProviderUsage).order_by(ProviderUsage.id))
        return list(rows.scalars())


async def stream_text(router: Any, **kwargs: Any) -> tuple[AIMessageChunk, int]:
    chunks = [c async for c in router.astream([HumanMessage("hello")], **kwargs)]
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged, len(chunks)


# --- failures that end in the fallback deployment's answer ---------------------------


@pytest.mark.parametrize(
    "fault",
    ["500", "503", "slow_first_byte", "malformed_json", "invalid_tool_call_json"],
)
async def test_failure_falls_back_to_next_deployment(
    fault: str, sides: tuple[Side, Side], routed: tuple[RouterChatModel, UsageRecorder]
) -> None:
    primary, fallback = sides
    router, recorder = routed
    transient = fault in ("500", "503", "slow_first_byte")
    for _ in range(2 if transient else 1):  # transient: retried once on the same deployment
        if fault in ("500", "503"):
            primary.fail(int(fault))
        elif fault == "slow_first_byte":
            primary.answer("too late", delay=5.0)
        elif fault == "malformed_json":
            primary.answer("never parsed", fault="malformed")
        else:
            primary.bad_tool_call()
    fallback.answer("from the fallback")

    reply = await router.ainvoke([HumanMessage("hello")], call=CALL)

    assert isinstance(reply, AIMessage) and reply.text == "from the fallback"
    assert reply.response_metadata["relaygraph"] == {
        "alias": "smart",
        "deployment": fallback.spec,
        "fallback": True,
        "cache_hit": False,
    }
    failed, answered = await usage_rows(recorder)
    assert (failed.deployment, failed.attempts, failed.fallback) == (
        primary.spec,
        2 if transient else 1,
        False,
    )
    assert failed.error and failed.cost_usd == 0 and failed.input_tokens == 0
    assert (answered.deployment, answered.error, answered.fallback) == (fallback.spec, None, True)
    assert (answered.input_tokens, answered.output_tokens) == (10, 5)
    assert answered.cost_usd > 0 and answered.price_known
    assert (answered.tenant, answered.user, answered.run_id, answered.alias) == (
        "acme",
        "ann",
        "run-1",
        "smart",
    )
    assert answered.prompt_name == "agent" and answered.model_version
    assert router.breaker_states() == {primary.spec: "closed", fallback.spec: "closed"}
    assert router.deployments[0].breaker.failures == (2 if transient else 1)


async def test_429_retry_after_is_honoured_on_the_same_deployment(
    sides: tuple[Side, Side], routed: tuple[RouterChatModel, UsageRecorder]
) -> None:
    primary, _ = sides
    router, recorder = routed
    primary.fail(429, retry_after=0.3)
    primary.answer("after waiting")

    started = time.monotonic()
    reply = await router.ainvoke([HumanMessage("hello")], call=CALL)

    assert time.monotonic() - started >= 0.3  # waited as asked, not the 10 ms backoff
    assert reply.text == "after waiting"
    (row,) = await usage_rows(recorder)
    assert (row.deployment, row.attempts, row.fallback, row.error) == (
        primary.spec,
        2,
        False,
        None,
    )
    assert router.deployments[0].breaker.failures == 0  # the success reset it


async def test_retry_after_longer_than_the_policy_allows_falls_back_at_once(
    sides: tuple[Side, Side], routed: tuple[RouterChatModel, UsageRecorder]
) -> None:
    primary, fallback = sides
    router, recorder = routed
    primary.fail(429, retry_after=3600)
    fallback.answer("elsewhere")

    reply = await router.ainvoke([HumanMessage("hello")], call=CALL)

    assert reply.text == "elsewhere"
    failed, _ = await usage_rows(recorder)
    assert failed.attempts == 1 and "429" in (failed.error or "")


async def test_unreachable_deployment_falls_back(
    stubs: tuple[OpenAIStub, GeminiStub], db: Database
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        dead = f"openai-compatible:m@http://127.0.0.1:{probe.getsockname()[1]}/v1"
    stubs[0].reset()
    stubs[1].reset()
    stubs[1].reply("gemini answers")
    recorder = UsageRecorder(db)
    router = make_router(stubs, [dead, "google:gemini-2.5-flash"], recorder)
    try:
        reply = await router.ainvoke([HumanMessage("hello")], call=CALL)
        assert reply.text == "gemini answers"
        failed, answered = await usage_rows(recorder)
        assert failed.deployment == dead and failed.attempts == 2
        assert "Connection" in (failed.error or "")
        assert answered.fallback
    finally:
        await router.aclose()
        await recorder.aclose()


# --- streams -------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["drop_before", "malformed", "slow_first_byte"])
async def test_stream_failing_before_its_first_token_falls_back(
    fault: str, sides: tuple[Side, Side], routed: tuple[RouterChatModel, UsageRecorder]
) -> None:
    primary, fallback = sides
    router, recorder = routed
    attempts = 1 if fault == "malformed" else 2
    for _ in range(attempts):
        if fault == "slow_first_byte":
            primary.answer("too late", delay=5.0)
        else:
            primary.answer("lost words", fault=fault)
    fallback.answer("streamed from the fallback")

    merged, _ = await stream_text(router, call=CALL)

    assert merged.text == "streamed from the fallback"
    assert merged.response_metadata["relaygraph"]["deployment"] == fallback.spec
    failed, answered = await usage_rows(recorder)
    assert failed.deployment == primary.spec and failed.error and failed.streamed
    assert answered.deployment == fallback.spec and answered.fallback and answered.streamed
    assert (answered.input_tokens, answered.output_tokens) == (10, 5)


async def test_stream_broken_after_first_token_is_a_clear_error(
    sides: tuple[Side, Side], routed: tuple[RouterChatModel, UsageRecorder]
) -> None:
    primary, fallback = sides
    router, recorder = routed
    primary.answer("first words then nothing", fault="drop_after")
    received: list[str] = []

    with pytest.raises(StreamInterrupted, match="broke after its first token") as caught:
        async for chunk in router.astream([HumanMessage("hello")], call=CALL):
            received.append(chunk.text)

    assert "".join(received).startswith("first")  # the caller saw the start, then the error
    assert primary.spec in str(caught.value)
    (row,) = await usage_rows(recorder)
    assert row.deployment == primary.spec and "StreamInterrupted" in (row.error or "")
    assert fallback.stub.requests == []  # no fallback: the answer had started
    assert router.deployments[0].breaker.failures == 1


async def test_streamed_invalid_tool_call_falls_back_before_anything_is_sent(
    sides: tuple[Side, Side], routed: tuple[RouterChatModel, UsageRecorder]
) -> None:
    primary, fallback = sides
    router, recorder = routed
    primary.bad_tool_call()
    fallback.answer("fine")

    merged, _ = await stream_text(router, call=CALL)

    assert merged.text == "fine" and not merged.tool_calls
    failed, answered = await usage_rows(recorder)
    assert failed.deployment == primary.spec and failed.error
    if primary.kind == "openai":  # google-genai itself rejects a call whose args are not an object
        assert "not valid JSON" in failed.error
    assert answered.fallback


# --- everything failing, breakers ----------------------------------------------------


async def test_all_deployments_failing_is_one_clear_error(
    sides: tuple[Side, Side], routed: tuple[RouterChatModel, UsageRecorder]
) -> None:
    primary, fallback = sides
    router, recorder = routed
    primary.fail(401)
    fallback.fail(400)

    with pytest.raises(AllDeploymentsFailed) as caught:
        await router.ainvoke([HumanMessage("hello")], call=CALL)

    message = str(caught.value)
    assert primary.spec in message and fallback.spec in message
    assert "401" in message and "400" in message
    rows = await usage_rows(recorder)
    assert [(r.deployment, r.attempts) for r in rows] == [(primary.spec, 1), (fallback.spec, 1)]


async def test_breaker_opens_skips_the_deployment_and_probes_after_cooldown(
    stubs: tuple[OpenAIStub, GeminiStub], sides: tuple[Side, Side], db: Database
) -> None:
    primary, fallback = sides
    recorder = UsageRecorder(db)
    router = make_router(stubs, [primary.spec, fallback.spec], recorder, failures=2, max_retries=0)
    now = [1000.0]
    breaker = router.deployments[0].breaker
    breaker.clock = lambda: now[0]
    try:
        for _ in range(2):
            primary.fail(500)
            fallback.answer("fallback")
            await router.ainvoke([HumanMessage("hello")], call=CALL)
        assert breaker.state == "open"
        served = len(primary.stub.requests)

        fallback.answer("fallback while open")
        reply = await router.ainvoke([HumanMessage("hello")], call=CALL)
        assert reply.text == "fallback while open"
        assert len(primary.stub.requests) == served  # skipped at once, no request

        now[0] += breaker.cooldown_seconds
        assert breaker.state == "half_open"
        primary.answer("primary is back")
        reply = await router.ainvoke([HumanMessage("hello")], call=CALL)
        assert reply.text == "primary is back"
        assert router.breaker_states()[primary.spec] == "closed"
    finally:
        await router.aclose()
        await recorder.aclose()


async def test_capabilities_keep_calls_away_from_deployments_that_cannot_serve_them(
    stubs: tuple[OpenAIStub, GeminiStub], sides: tuple[Side, Side]
) -> None:
    primary, fallback = sides
    router = make_router(
        stubs, [{"spec": primary.spec, "tools": False}, fallback.spec], recorder=None
    )
    tool = {
        "type": "function",
        "function": {"name": "notes_search", "parameters": {"type": "object", "properties": {}}},
    }
    try:
        fallback.answer("served by the tool-capable one")
        reply = await router.bind_tools([tool]).ainvoke([HumanMessage("hello")])
        assert reply.text == "served by the tool-capable one"
        assert primary.stub.requests == []

        tiny = make_router(stubs, [{"spec": primary.spec, "context_window": 50}], recorder=None)
        with pytest.raises(NoCapableDeployment, match="context window"):
            await tiny.ainvoke([HumanMessage("word " * 400)])
        await tiny.aclose()
    finally:
        await router.aclose()


async def test_langgraph_messages_stream_sees_each_token_once(
    stubs: tuple[OpenAIStub, GeminiStub], sides: tuple[Side, Side]
) -> None:
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph

    primary, fallback = sides
    router = make_router(stubs, [primary.spec, fallback.spec], recorder=None)
    primary.answer("tokens arrive one by one")

    class State(TypedDict):
        reply: str

    async def node(state: State) -> State:
        message = await router.ainvoke([HumanMessage("hello")], call=CALL)
        return {"reply": message.text}

    builder = StateGraph(State)
    builder.add_node("model", node)
    builder.add_edge(START, "model")
    builder.add_edge("model", END)
    try:
        pieces = [
            chunk.text
            async for chunk, _meta in builder.compile().astream(
                {"reply": ""}, stream_mode="messages"
            )
        ]
    finally:
        await router.aclose()
    assert len([p for p in pieces if p]) > 1  # streamed, not one final message
    assert "".join(pieces) == "tokens arrive one by one"


@pytest.mark.parametrize("streaming", [False, True])
async def test_content_filter_is_no_answer_and_falls_back(
    streaming: bool, sides: tuple[Side, Side], routed: tuple[RouterChatModel, UsageRecorder]
) -> None:
    """An empty answer stopped by the provider's filter never passes for an answer; the
    provider is healthy, so its breaker does not count it, and it is not retried."""
    primary, fallback = sides
    router, recorder = routed
    reason = "content_filter" if primary.kind == "openai" else "SAFETY"
    primary.answer("", finish_reason=reason)
    fallback.answer("answered by the other provider")

    if streaming:
        reply: AIMessage | AIMessageChunk = (await stream_text(router, call=CALL))[0]
    else:
        reply = await router.ainvoke([HumanMessage("hello")], call=CALL)

    assert reply.text == "answered by the other provider"
    failed, answered = await usage_rows(recorder)
    assert failed.deployment == primary.spec and failed.attempts == 1
    assert "ContentFiltered" in (failed.error or "") and reason in (failed.error or "")
    assert answered.fallback
    assert router.deployments[0].breaker.failures == 0
