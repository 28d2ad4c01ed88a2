"""A true connect timeout: the TCP handshake itself never completes (a listening socket
with a backlog of 0, never accept()ed, its accept queue filled; Linux then drops further
SYNs). A server that accepts and never answers is a read timeout, tested elsewhere.

Checks that the client library's own timeout (``ProviderSettings.timeout_seconds``, the
deployment's configured timeout) ends the attempt, well before the router's attempt
deadline, and that the router retries once and falls back."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from sqlalchemy import select

from providers.factory import ProviderSettings, build_router
from providers.retry import RetryPolicy
from providers.router import CallInfo, RouterServices
from providers.usage import UsageRecorder
from store import Database, migrate
from store.models import ProviderUsage
from tests.stubs.gemini_stub import GeminiStub
from tests.stubs.openai_stub import OpenAIStub

CONNECT_TIMEOUT = 0.5
ROUTER_DEADLINE = 20.0
"""The router's own per-attempt deadline: hitting it would mean the client's configured
timeout was ignored."""


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A loopback port where connect() hangs until the client gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket()
            filler.settimeout(0.3)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break  # the accept queue is full: the next handshake hangs too
        else:
            pytest.fail("could not fill the accept queue of a backlog-0 socket")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[UsageRecorder]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'usage.db'}"
    migrate(url)
    db = Database(url)
    usage = UsageRecorder(db)
    yield usage
    await usage.aclose()
    await db.dispose()


@pytest.mark.parametrize("primary_kind", ["openai", "google"])
async def test_connect_timeout_is_honoured_and_falls_back(
    primary_kind: str, unanswered_port: int, recorder: UsageRecorder
) -> None:
    hanging = f"http://127.0.0.1:{unanswered_port}"
    with OpenAIStub() as openai_stub, GeminiStub() as gemini_stub:
        if primary_kind == "openai":
            primary, fallback, stub = "openai:gpt-4o-mini", "google:gemini-2.5-flash", gemini_stub
            urls = {"openai_base_url": f"{hanging}/v1", "google_base_url": gemini_stub.base_url}
        else:
            primary, fallback, stub = "google:gemini-2.5-flash", "openai:gpt-4o-mini", openai_stub
            urls = {"openai_base_url": openai_stub.base_url, "google_base_url": hanging}
        settings = ProviderSettings(
            openai_api_key="sk-test",
            google_api_key="g-test",
            timeout_seconds=CONNECT_TIMEOUT,
            **urls,
        )
        services = RouterServices(
            recorder=recorder,
            retry=RetryPolicy(max_retries=1, base_seconds=0.01),
            attempt_timeout_seconds=ROUTER_DEADLINE,
        )
        router = build_router("smart", {"smart": [primary, fallback]}, settings, services=services)
        stub.reply("served by the fallback")
        try:
            reply = await router.ainvoke([HumanMessage("hello")], call=CallInfo(tenant="t"))
        finally:
            await router.aclose()
        assert openai_stub.pending == 0 and gemini_stub.pending == 0

    assert reply.text == "served by the fallback"
    await recorder.flush()
    async with recorder.db.session() as session:
        rows = list(
            (await session.execute(select(ProviderUsage).order_by(ProviderUsage.id))).scalars()
        )
    failed, served = rows
    assert failed.deployment == primary and failed.attempts == 2
    assert failed.error is not None
    assert "timed out" in failed.error.lower() or "timeout" in failed.error.lower()
    assert f"model timeout of {ROUTER_DEADLINE:g} s" not in failed.error
    # the client's timeout ended both attempts: the router's deadline alone would have
    # taken ROUTER_DEADLINE per attempt (the bound leaves slack for a loaded machine)
    assert failed.latency_ms < ROUTER_DEADLINE * 1000 / 2, failed.latency_ms
    assert served.deployment == fallback and served.fallback
    assert router.deployments[0].breaker.failures == 2


async def test_the_routers_deadline_says_which_timeout_passed(recorder: UsageRecorder) -> None:
    """A read that outlasts the router's attempt deadline (the client's own timeout is
    longer) is recorded with a text that names the setting to change."""
    with OpenAIStub() as slow, GeminiStub() as gemini_stub:
        settings = ProviderSettings(
            openai_api_key="sk-test",
            openai_base_url=slow.base_url,
            google_api_key="g-test",
            google_base_url=gemini_stub.base_url,
            timeout_seconds=30.0,
        )
        services = RouterServices(
            recorder=recorder,
            retry=RetryPolicy(max_retries=0),
            attempt_timeout_seconds=CONNECT_TIMEOUT,
        )
        specs = ["openai:gpt-4o-mini", "google:gemini-2.5-flash"]
        router = build_router("smart", {"smart": specs}, settings, services=services)
        slow.reply("too late", delay=CONNECT_TIMEOUT * 4)
        gemini_stub.reply("on time")
        try:
            reply = await router.ainvoke([HumanMessage("hello")], call=CallInfo(tenant="t"))
        finally:
            await router.aclose()
    assert reply.text == "on time"
    await recorder.flush()
    async with recorder.db.session() as session:
        failed = (await session.execute(select(ProviderUsage).order_by(ProviderUsage.id))).scalar()
    assert failed is not None and failed.deployment == "openai:gpt-4o-mini"
    assert failed.error == (
        f"TimeoutError: no answer within the model timeout of {CONNECT_TIMEOUT:g} s "
        "(RELAYGRAPH_MODEL_TIMEOUT_SECONDS)"
    )
