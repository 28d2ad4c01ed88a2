"""The provider fault matrix (issue 6) end to end through the HTTP API (issue 11).

One API server (uvicorn on 127.0.0.1) routes a model alias per fault to two deployments:
the OpenAI-compatible stub first, the Gemini-compatible stub as fallback. Each test
injects one fault and checks what a person sees (HTTP status, run status, the error text,
never a traceback), whether the fallback served the run, the usage rows (``GET /usage``
and the rows themselves: error, fallback, attempts) and the breakers (``/metrics``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from runtime.settings import Settings
from store import Database
from store.models import ProviderUsage
from tests.api.conftest import ApiServer, _create_keys, _Running
from tests.stubs.gemini_stub import GeminiStub
from tests.stubs.openai_stub import OpenAIStub

pytestmark = [pytest.mark.reliability, pytest.mark.slow]

TIMEOUT_SECONDS = 1.0
"""Per-attempt model timeout of the server (the slow stub answers after 2 s)."""
PRICE = {"input": 1.0, "output": 2.0}  # USD per 1M tokens: every row has a known cost
SCENARIOS = [
    "rate_limited",
    "rate_limited_long",
    "server_500",
    "server_503",
    "timeout",
    "refused",
    "malformed",
    "broken_stream",
    "stream_drop_before",
    "content_filter",
    "auth",
    "all_down",
    "budget",
]
HELLO = {"messages": [{"role": "user", "content": "hello"}]}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once it is closed


def _primary_spec(scenario: str, refused_port: int) -> str:
    if scenario == "refused":  # nothing listens on that port
        return f"openai-compatible:p-refused@http://127.0.0.1:{refused_port}/v1"
    return f"openai:p-{scenario}"


@dataclass
class Matrix:
    server: ApiServer
    openai: OpenAIStub
    gemini: GeminiStub
    assistants: dict[str, str]
    refused_port: int

    def primary(self, scenario: str) -> str:
        return _primary_spec(scenario, self.refused_port)

    @staticmethod
    def fallback(scenario: str) -> str:
        return f"google:g-{scenario}"

    def reset(self) -> None:
        self.openai.reset()
        self.gemini.reset()


def _models(refused_port: int) -> dict[str, Any]:
    return {
        f"fault-{scenario}": [
            {"spec": _primary_spec(scenario, refused_port), **PRICE},
            {"spec": Matrix.fallback(scenario), **PRICE},
        ]
        for scenario in SCENARIOS
    }


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    data_dir = tmp_path_factory.mktemp("faults") / "data"
    with OpenAIStub() as openai_stub, GeminiStub() as gemini_stub:
        refused_port = _closed_port()
        settings = Settings(
            data_dir=data_dir,
            openai_api_key="sk-fault-matrix-0000",
            openai_base_url=openai_stub.base_url,
            google_api_key="AIza-fault-matrix-0000",
            google_base_url=gemini_stub.base_url,
            models=_models(refused_port),
            model="fault-rate_limited",
            model_timeout_seconds=TIMEOUT_SECONDS,
            model_max_retries=1,
            model_breaker_failures=2,
            model_breaker_cooldown_seconds=600,
        )
        with ThreadPoolExecutor(1) as pool:
            keys = pool.submit(asyncio.run, _create_keys(settings)).result()
        running = _Running(settings, workers=2)
        running.start()
        try:
            server = ApiServer(f"http://127.0.0.1:{running.port}/api/v1", settings, keys)
            assistants = {}
            for scenario in SCENARIOS:
                configurable: dict[str, Any] = {"model": f"fault-{scenario}"}
                if scenario == "budget":
                    configurable["limits"] = {"max_run_tokens": 5}
                created = httpx.post(
                    f"{server.base_url}/assistants",
                    json={"graph_id": "agent", "config": {"configurable": configurable}},
                    headers=server.headers("ada"),
                    timeout=30,
                )
                assert created.status_code == 200, created.text
                assistants[scenario] = created.json()["assistant_id"]
            matrix = Matrix(server, openai_stub, gemini_stub, assistants, refused_port)
            yield matrix
        finally:
            running.stop()


def _client(matrix: Matrix) -> httpx.AsyncClient:
    server = matrix.server
    return httpx.AsyncClient(base_url=server.base_url, headers=server.headers("alice"), timeout=60)


@dataclass
class Outcome:
    status_code: int
    body: Any
    run: dict[str, Any]
    error_text: str | None
    """The run's error as a person sees it (wait: ``__error__.message``; stream: the
    ``error`` event's data); None when the run succeeded."""
    answer: str | None


async def _wait(matrix: Matrix, scenario: str) -> Outcome:
    async with _client(matrix) as http:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        body = {"assistant_id": matrix.assistants[scenario], "input": HELLO}
        response = await http.post(f"/threads/{tid}/runs/wait", json=body)
        run = (await http.get(response.headers["content-location"])).json()
    payload = response.json()
    error = payload.get("__error__") if isinstance(payload, dict) else None
    answer = None
    if error is None:
        answer = payload["messages"][-1]["content"]
    return Outcome(response.status_code, payload, run, error["message"] if error else None, answer)


async def _stream(matrix: Matrix, scenario: str) -> tuple[Outcome, list[str]]:
    async with _client(matrix) as http:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        body = {
            "assistant_id": matrix.assistants[scenario],
            "input": HELLO,
            "stream_mode": ["messages-tuple", "updates"],
        }
        events: list[tuple[str, str]] = []
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            status = response.status_code
            location = response.headers["content-location"]
            name = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    name = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    events.append((name, line.partition(":")[2].strip()))
        run = (await http.get(location)).json()
    errors = [data for name, data in events if name == "error"]
    tokens = [data for name, data in events if name.startswith("messages")]
    return Outcome(status, None, run, errors[-1] if errors else None, None), tokens


def _usage(matrix: Matrix, scenario: str) -> dict[str, dict[str, Any]]:
    """``GET /usage?group_by=model`` (alice's own calls) for this scenario's deployments."""
    response = httpx.get(
        f"{matrix.server.base_url}/usage",
        params={"group_by": "model"},
        headers=matrix.server.headers("alice"),
    )
    assert response.status_code == 200, response.text
    names = {matrix.primary(scenario), matrix.fallback(scenario)}
    return {
        group["group"]["model"]: group
        for group in response.json()["groups"]
        if group["group"]["model"] in names
    }


async def _rows_of(settings: Settings, deployments: set[str]) -> list[ProviderUsage]:
    db = Database(settings.store_url)
    try:
        async with db.session() as session:
            statement = (
                select(ProviderUsage)
                .where(ProviderUsage.deployment.in_(deployments))
                .order_by(ProviderUsage.id)
            )
            return list((await session.execute(statement)).scalars())
    finally:
        await db.dispose()


def _rows(matrix: Matrix, scenario: str, count: int) -> list[ProviderUsage]:
    """The scenario's usage rows once ``count`` are written (the server's recorder writes
    them in batches within 0.2 s of the call)."""
    names = {matrix.primary(scenario), matrix.fallback(scenario)}
    deadline = time.monotonic() + 10
    with ThreadPoolExecutor(1) as pool:
        while True:
            rows = pool.submit(asyncio.run, _rows_of(matrix.server.settings, names)).result()
            if len(rows) >= count or time.monotonic() > deadline:
                assert len(rows) == count, [(row.deployment, row.error) for row in rows]
                return rows
            time.sleep(0.05)


BREAKER_STATE = {0: "closed", 1: "half_open", 2: "open"}


def _breakers(matrix: Matrix, scenario: str) -> dict[str, str]:
    """Breaker state by deployment from ``/metrics`` (as an admin)."""
    root = matrix.server.base_url.removesuffix("/api/v1")
    response = httpx.get(f"{root}/metrics", headers=matrix.server.headers("ada"))
    assert response.status_code == 200, response.text
    states = {
        match[1]: BREAKER_STATE[int(float(match[2]))]
        for match in re.finditer(
            r'^relaygraph_model_breaker_state\{deployment="([^"]+)"\} (\S+)$',
            response.text,
            re.MULTILINE,
        )
    }
    names = (matrix.primary(scenario), matrix.fallback(scenario))
    return {name: states[name] for name in names if name in states}


def _readable(text: str | None) -> str:
    assert text, "the run failed without an error text"
    assert "Traceback" not in text and 'File "' not in text, text
    return text


# --- faults that the fallback serves --------------------------------------------------


async def test_429_with_retry_after_is_retried_on_the_primary(matrix: Matrix) -> None:
    matrix.reset()
    matrix.openai.fail(429, "slow down", type="rate_limit_error", retry_after=0.3)
    matrix.openai.reply("served after waiting")
    outcome = await _wait(matrix, "rate_limited")
    assert outcome.status_code == 200 and outcome.run["status"] == "success"
    assert outcome.answer == "served after waiting"
    assert len(matrix.openai.requests) == 2 and matrix.gemini.requests == []
    [row] = _rows(matrix, "rate_limited", 1)
    assert (row.deployment, row.attempts, row.fallback, row.error) == (
        "openai:p-rate_limited",
        2,
        False,
        None,
    )
    usage = _usage(matrix, "rate_limited")["openai:p-rate_limited"]
    assert usage["calls"] == 1 and usage["errors"] == 0 and usage["cost_usd"] > 0
    assert _breakers(matrix, "rate_limited")["openai:p-rate_limited"] == "closed"


async def test_429_asking_longer_than_the_policy_allows_falls_back_at_once(
    matrix: Matrix,
) -> None:
    matrix.reset()
    matrix.openai.fail(429, "come back in an hour", type="rate_limit_error", retry_after=3600)
    matrix.gemini.reply("the fallback had capacity")
    outcome = await _wait(matrix, "rate_limited_long")
    assert outcome.run["status"] == "success"
    assert outcome.answer == "the fallback had capacity"
    assert len(matrix.openai.requests) == 1  # not waited for, not retried
    failed, served = _rows(matrix, "rate_limited_long", 2)
    assert failed.attempts == 1 and failed.error is not None and "429" in failed.error
    assert served.fallback is True and served.cost_usd > 0


@pytest.mark.parametrize("status", [500, 503])
async def test_5xx_is_retried_then_falls_back(matrix: Matrix, status: int) -> None:
    scenario = f"server_{status}"
    matrix.reset()
    for _ in range(2):  # the first attempt and the one retry
        matrix.openai.fail(status, f"upstream says {status}")
    matrix.gemini.reply("answered by the fallback")
    outcome = await _wait(matrix, scenario)
    assert outcome.status_code == 200 and outcome.run["status"] == "success"
    assert outcome.answer == "answered by the fallback"
    assert len(matrix.openai.requests) == 2 and len(matrix.gemini.requests) == 1
    failed, served = _rows(matrix, scenario, 2)
    assert failed.deployment == f"openai:p-{scenario}" and failed.attempts == 2
    assert failed.error is not None and str(status) in failed.error
    assert failed.cost_usd == 0
    assert served.deployment == f"google:g-{scenario}" and served.fallback is True
    assert served.error is None and served.cost_usd > 0
    usage = _usage(matrix, scenario)
    assert usage[f"openai:p-{scenario}"]["errors"] == 1
    assert usage[f"google:g-{scenario}"]["errors"] == 0
    # two consecutive failures: the primary's breaker is open, the fallback's closed
    assert _breakers(matrix, scenario) == {
        f"openai:p-{scenario}": "open",
        f"google:g-{scenario}": "closed",
    }


async def test_timeout_falls_back(matrix: Matrix) -> None:
    matrix.reset()
    for _ in range(2):
        matrix.openai.reply("too late", delay=TIMEOUT_SECONDS * 2)
    matrix.gemini.reply("the fallback was on time")
    outcome = await _wait(matrix, "timeout")
    assert outcome.run["status"] == "success"
    assert outcome.answer == "the fallback was on time"
    failed, served = _rows(matrix, "timeout", 2)
    assert failed.deployment == "openai:p-timeout" and failed.attempts == 2
    assert failed.error is not None and "Timeout" in failed.error
    assert served.fallback is True and served.error is None
    assert _breakers(matrix, "timeout")["openai:p-timeout"] == "open"


async def test_connection_refused_falls_back(matrix: Matrix) -> None:
    matrix.reset()
    matrix.gemini.reply("nobody listened there")
    outcome = await _wait(matrix, "refused")
    assert outcome.run["status"] == "success"
    assert outcome.answer == "nobody listened there"
    primary = matrix.primary("refused")
    failed, served = _rows(matrix, "refused", 2)
    assert failed.deployment == primary and failed.attempts == 2
    assert failed.error is not None and "Connection" in failed.error
    assert served.fallback is True
    assert _breakers(matrix, "refused")[primary] == "open"


async def test_malformed_json_falls_back_without_a_retry(matrix: Matrix) -> None:
    matrix.reset()
    matrix.openai.reply("never parsed", fault="malformed")
    matrix.gemini.reply("well-formed fallback")
    outcome = await _wait(matrix, "malformed")
    assert outcome.run["status"] == "success"
    assert outcome.answer == "well-formed fallback"
    assert len(matrix.openai.requests) == 1 and matrix.openai.pending == 0
    failed, served = _rows(matrix, "malformed", 2)
    assert failed.error is not None and failed.attempts == 1
    assert served.fallback is True
    assert _breakers(matrix, "malformed")["openai:p-malformed"] == "closed"  # 1 of 2


async def test_content_filter_is_a_failure_and_falls_back(matrix: Matrix) -> None:
    matrix.reset()
    matrix.openai.reply("", finish_reason="content_filter")
    matrix.gemini.reply("answered elsewhere")
    outcome = await _wait(matrix, "content_filter")
    assert outcome.run["status"] == "success"
    assert outcome.answer == "answered elsewhere"
    assert len(matrix.openai.requests) == 1  # a refusal is not retried
    failed, served = _rows(matrix, "content_filter", 2)
    assert failed.error is not None and "content filter" in failed.error
    assert served.fallback is True


async def test_auth_error_is_not_retried_and_is_recorded(
    matrix: Matrix, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 is no transient failure: one attempt, then (as router.py documents: any
    failure falls back) the next deployment; the wrong key is not hidden: the usage row
    carries the provider's 401, the breaker counts it, and the log names the setting."""
    caplog.set_level(logging.WARNING, logger="providers.router")
    matrix.reset()
    matrix.openai.fail(
        401, "Incorrect API key provided", type="invalid_request_error", code="invalid_api_key"
    )
    matrix.gemini.reply("served with the other provider's key")
    outcome = await _wait(matrix, "auth")
    assert outcome.run["status"] == "success"
    assert len(matrix.openai.requests) == 1 and matrix.openai.pending == 0
    failed, served = _rows(matrix, "auth", 2)
    assert failed.attempts == 1 and failed.error is not None
    assert "401" in failed.error and "Incorrect API key" in failed.error
    assert served.fallback is True
    assert _usage(matrix, "auth")["openai:p-auth"]["errors"] == 1
    assert _breakers(matrix, "auth")["openai:p-auth"] == "closed"  # 1 of 2 failures
    warnings = [r.getMessage() for r in caplog.records if r.name == "providers.router"]
    assert any("openai:p-auth refused its default key" in w for w in warnings), warnings
    assert any("OPENAI_API_KEY" in w for w in warnings)
    assert not any("sk-fault-matrix" in w for w in warnings)


# --- faults that end the run with an error a person can act on ------------------------


async def test_stream_broken_after_the_first_token_is_an_error_event(matrix: Matrix) -> None:
    matrix.reset()
    matrix.openai.reply("one two three four", fault="drop_after")
    outcome, tokens = await _stream(matrix, "broken_stream")
    assert outcome.status_code == 200 and outcome.run["status"] == "error"
    text = _readable(outcome.error_text)
    assert "broke after its first token" in text and "incomplete" in text
    assert any("one" in data for data in tokens)  # the token had gone out
    assert matrix.gemini.requests == []  # no fallback can repair a sent answer
    [row] = _rows(matrix, "broken_stream", 1)
    assert row.streamed is True and row.error is not None and "broke" in row.error


async def test_stream_dropped_before_the_first_token_falls_back(matrix: Matrix) -> None:
    matrix.reset()
    for _ in range(2):  # dropped connections are transient: retried once
        matrix.openai.reply("lost words", fault="drop_before")
    matrix.gemini.reply("streamed by the fallback")
    outcome, tokens = await _stream(matrix, "stream_drop_before")
    assert outcome.status_code == 200 and outcome.run["status"] == "success"
    assert outcome.error_text is None
    streamed = "".join(tokens)
    assert "fallback" in streamed and "lost" not in streamed
    failed, served = _rows(matrix, "stream_drop_before", 2)
    assert failed.streamed and failed.error is not None and failed.attempts == 2
    assert served.streamed and served.fallback and served.error is None
    assert _breakers(matrix, "stream_drop_before")["openai:p-stream_drop_before"] == "open"


async def test_every_deployment_down_is_one_clear_error(matrix: Matrix) -> None:
    matrix.reset()
    for _ in range(2):
        matrix.openai.fail(500, "primary is down")
        matrix.gemini.fail(500, "fallback is down")
    outcome = await _wait(matrix, "all_down")
    _rows(matrix, "all_down", 2)
    assert outcome.status_code == 200 and outcome.run["status"] == "error"
    text = _readable(outcome.error_text)
    assert "every deployment failed" in text
    assert "openai:p-all_down" in text and "google:g-all_down" in text
    usage = _usage(matrix, "all_down")
    assert {name: group["errors"] for name, group in usage.items()} == {
        "openai:p-all_down": 1,
        "google:g-all_down": 1,
    }
    assert set(_breakers(matrix, "all_down").values()) == {"open"}


async def test_budget_exhaustion_stops_the_run_before_any_call(matrix: Matrix) -> None:
    matrix.reset()
    outcome = await _wait(matrix, "budget")
    assert outcome.status_code == 200 and outcome.run["status"] == "success"
    assert matrix.openai.requests == [] and matrix.gemini.requests == []
    assert outcome.body["stop_reason"] == "token_budget"
    message = _readable(outcome.body["final_message"])
    assert "token budget" in message and "raise max_run_tokens" in message
    await asyncio.sleep(0.5)  # past the recorder's flush interval: nothing was recorded
    assert _rows(matrix, "budget", 0) == []
