"""Router features beyond fallback: response cache, structured output with one repair,
offline token counts and context fitting, prices, breaker states, Retry-After parsing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel, Field
from sqlalchemy import select

from providers.breaker import CircuitBreaker
from providers.cache import ResponseCache
from providers.catalog import Catalog
from providers.errors import ModelSpecError, StructuredOutputError
from providers.factory import ProviderSettings, alias_entries, build_router
from providers.retry import RetryPolicy, retry_after_seconds
from providers.router import CallInfo, RouterServices
from providers.structured import generate_structured
from providers.tokens import estimate_tokens, fit_messages
from providers.usage import UsageRecorder, summarize_usage
from store import Database, migrate
from store.models import ProviderCacheEntry, ProviderUsage

CALL = CallInfo(tenant="acme", user="ann")


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    migrate(url)
    database = Database(url)
    yield database
    await database.dispose()


def _router(stub: Any, db: Database, **services: Any) -> Any:
    settings = ProviderSettings(compatible_api_key=None)
    return build_router(
        f"openai-compatible:m@{stub.base_url}",
        {},
        settings,
        services=RouterServices(recorder=UsageRecorder(db), **services),
    )


# --- cache ---------------------------------------------------------------------------


async def test_cache_hit_miss_bypass_and_sensitive(openai_stub: Any, db: Database) -> None:
    router = _router(openai_stub, db, cache=ResponseCache(db, ttl_seconds=60))
    question = [HumanMessage("what is 2+2?")]
    openai_stub.reply("4")
    try:
        miss = await router.ainvoke(question, call=CALL)
        hit = await router.ainvoke(
            [HumanMessage("what is 2+2?", id="other-id")], call=CALL
        )  # ids are not part of the key
        assert miss.text == hit.text == "4"
        assert hit.response_metadata["relaygraph"]["cache_hit"] is True
        assert len(openai_stub.requests) == 1

        openai_stub.reply("four")
        bypass = await router.ainvoke(question, call=CallInfo(tenant="acme", use_cache=False))
        openai_stub.reply("FOUR")
        sensitive = await router.ainvoke(question, call=CallInfo(tenant="acme", sensitive=True))
        assert (bypass.text, sensitive.text) == ("four", "FOUR")
        assert len(openai_stub.requests) == 3

        recorder = router.services.recorder
        await recorder.flush()
        await router.services.cache.flush()
        async with db.session() as session:
            usage = list((await session.execute(select(ProviderUsage))).scalars())
            entries = list((await session.execute(select(ProviderCacheEntry))).scalars())
        assert [u.cache_hit for u in usage] == [False, True, False, False]
        assert usage[1].cost_usd == 0
        assert len(entries) == 1 and entries[0].hits == 1 and entries[0].user == "ann"
    finally:
        await router.aclose()


async def test_expired_cache_entry_is_a_miss(openai_stub: Any, db: Database) -> None:
    router = _router(openai_stub, db, cache=ResponseCache(db, ttl_seconds=0.0))
    openai_stub.reply("a")
    openai_stub.reply("b")
    try:
        first = await router.ainvoke([HumanMessage("q")], call=CALL)
        second = await router.ainvoke([HumanMessage("q")], call=CALL)
        assert (first.text, second.text) == ("a", "b")
    finally:
        await router.aclose()


# --- structured output ---------------------------------------------------------------


class Plan(BaseModel):
    """A plan of steps."""

    goal: str
    steps: list[str] = Field(min_length=1)


async def test_structured_output_repairs_once(openai_stub: Any, db: Database) -> None:
    router = _router(openai_stub, db)
    openai_stub.reply(tool_calls=[{"name": "Plan", "args": {"goal": "ship", "steps": []}}])
    openai_stub.reply(tool_calls=[{"name": "Plan", "args": {"goal": "ship", "steps": ["test"]}}])
    try:
        plan = await generate_structured(router, [HumanMessage("plan")], Plan, call=CALL)
    finally:
        await router.aclose()
    assert plan == Plan(goal="ship", steps=["test"])
    first, repair = openai_stub.requests
    assert first["tool_choice"]["function"]["name"] == "Plan"
    feedback = repair["messages"][-1]
    assert feedback["role"] == "tool" and "steps" in feedback["content"]


async def test_structured_output_fails_clearly_after_the_repair(
    openai_stub: Any, db: Database
) -> None:
    router = _router(openai_stub, db)
    for _ in range(2):
        openai_stub.reply(tool_calls=[{"name": "Plan", "args": {"goal": "ship"}}])
    try:
        with pytest.raises(StructuredOutputError, match="also after one repair attempt"):
            await generate_structured(router, [HumanMessage("plan")], Plan, call=CALL)
    finally:
        await router.aclose()
    assert len(openai_stub.requests) == 2


# --- tokens and context fitting ------------------------------------------------------


def test_fitting_drops_old_turns_but_keeps_tool_pairs_and_system() -> None:
    call_message = AIMessage("", tool_calls=[{"name": "t", "args": {"q": "x"}, "id": "c1"}])
    messages = [
        SystemMessage("rules"),
        HumanMessage("old " * 200),
        AIMessage("old answer " * 50),
        HumanMessage("new question"),
        call_message,
        ToolMessage("result " * 20, tool_call_id="c1"),
    ]
    newest = messages[3:]
    budget = estimate_tokens([messages[0], *newest]) + 5
    fitted = fit_messages(messages, budget)
    assert fitted == [messages[0], *newest]
    tail = fit_messages(messages, estimate_tokens([messages[0], *messages[4:]]) + 1)
    assert tail == [messages[0], call_message, messages[5]]  # the pair stays whole
    assert fit_messages(messages, 10) is None


def test_estimates_never_undercount_plain_english() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 20
    # ~4.4 characters per token in English: the estimate (3.5) must be at least that.
    assert estimate_tokens([HumanMessage(text)]) >= len(text) / 4.4


# --- prices, aliases, breaker, Retry-After -------------------------------------------


def test_costs_from_the_shipped_table_and_an_override(tmp_path: Path) -> None:
    catalog = Catalog.load()
    price = catalog.info("openai", "gpt-4o-mini-2024-07-18").price  # dated snapshot
    assert price.cost(1_000_000, 1_000_000, cached_tokens=500_000) == pytest.approx(
        0.5 * 0.15 + 0.5 * 0.075 + 0.60
    )
    assert not catalog.info("openai-compatible", "llama3").price.known
    override = tmp_path / "prices.json"
    override.write_text(json.dumps({"models": {"llama3": {"input": 1, "output": 2}}}))
    assert Catalog.load(override).info("openai-compatible", "llama3").price.cost(1e6, 1e6) == 3
    override.write_text('{"models": {"x": {"input": -1}}}')
    with pytest.raises(ModelSpecError, match="malformed entry"):
        Catalog.load(override)


def test_alias_forms_and_errors() -> None:
    assert alias_entries("openai:gpt-4o", {}) == (["openai:gpt-4o"], "ordered")
    assert alias_entries("x", {"x": {"deployments": ["openai:a"], "strategy": "cost"}}) == (
        ["openai:a"],
        "cost",
    )
    with pytest.raises(ModelSpecError, match="not understood"):
        alias_entries("unknown-alias", {})
    with pytest.raises(ModelSpecError, match="non-empty list"):
        alias_entries("x", {"x": []})


def test_breaker_half_open_allows_one_probe() -> None:
    now = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown_seconds=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()
    now[0] = 10
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()
    assert breaker.state == "open"  # the probe failed: open again for a full cool-down


def test_retry_after_forms() -> None:
    def error(headers: dict[str, str]) -> Exception:
        exc = Exception("429")
        exc.response = httpx.Response(429, headers=headers)  # type: ignore[attr-defined]
        return exc

    assert retry_after_seconds(error({"retry-after": "2"})) == 2
    assert retry_after_seconds(error({"retry-after-ms": "1500"})) == 1.5
    assert retry_after_seconds(error({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0
    assert retry_after_seconds(error({})) is None
    policy = RetryPolicy(base_seconds=1, max_seconds=5)
    assert policy.wait_seconds(1, 30) == 5 and policy.wait_seconds(1, 2) == 2
    assert all(0 <= policy.wait_seconds(3, None) <= 4 for _ in range(50))


async def test_usage_summary_groups(openai_stub: Any, db: Database) -> None:
    router = _router(openai_stub, db)
    openai_stub.reply("a")
    openai_stub.reply("b")
    try:
        await router.ainvoke([HumanMessage("q")], call=CallInfo(tenant="acme", user="ann"))
        await router.ainvoke([HumanMessage("q")], call=CallInfo(tenant="acme", user="bob"))
        await router.services.recorder.flush()
    finally:
        await router.aclose()
    by_user = await summarize_usage(db, tenant="acme", group_by=["user"])
    assert [(r.group["user"], r.calls, r.input_tokens) for r in by_user] == [
        ("ann", 1, 10),
        ("bob", 1, 10),
    ]
    (only_ann,) = await summarize_usage(db, tenant="acme", user="ann", group_by=["day"])
    assert only_ann.calls == 1 and len(only_ann.group["day"]) == 10
    assert await summarize_usage(db, tenant="other", group_by=["model"]) == []
