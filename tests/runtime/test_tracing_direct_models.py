"""Trace rows of model calls that bypass our router (runtime/tracing.py): a user graph
calling ``langchain_openai.ChatOpenAI`` itself gets its step's model fields from the
callback events; router calls keep the router's own record and are never counted twice.

The module is also the user graph it tests (registered as ``direct_models``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any, TypedDict
from uuid import uuid4

import httpx
from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from graphs.context import RunContext
from identity import local_principal
from providers.catalog import Catalog
from providers.router import RouterChatModel
from providers.usage import UsageRecord
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from runtime.tracing import ROUTER_LLM_TYPE, RunTracer, StepTrace
from store.models import ProviderUsage, TraceStep

GRAPH = f"{__name__}:graph"
ROOT = Path(__file__).resolve().parents[2]
ANN = local_principal(tenant="acme", user="ann")

# --- the user graph ----------------------------------------------------------------------

GRAPH_VERSION = "1"


class ASSISTANT_OPTIONS(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str
    use_router: bool = False
    """``answer`` calls the assistant's model (our router) without a ``CallInfo``."""


class State(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]


async def _call_chat(runtime: Runtime[RunContext], model: str, state: State) -> Any:
    base_url = str(runtime.context.options["base_url"])
    # Its own HTTP client: langchain_openai's shared default one is bound to the first
    # event loop that used it, and every test has its own loop.
    async with httpx.AsyncClient() as client:
        chat = ChatOpenAI(
            model=model,
            base_url=base_url,
            api_key="sk-test",  # type: ignore[arg-type]
            max_retries=0,
            http_async_client=client,
        )
        return await chat.ainvoke(state["messages"])


async def draft(state: State, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """A model the price catalog does not know."""
    return {"messages": [await _call_chat(runtime, "house-model", state)]}


async def answer(state: State, runtime: Runtime[RunContext]) -> dict[str, Any]:
    if runtime.context.options.get("use_router"):
        reply = await runtime.context.model.ainvoke(state["messages"])
    else:
        reply = await _call_chat(runtime, "gpt-4o-mini", state)
    return {"messages": [reply]}


builder = StateGraph(State, context_schema=RunContext)
builder.add_node("draft", draft)
builder.add_node("answer", answer)
builder.add_edge(START, "draft")
builder.add_edge("draft", "answer")
builder.add_edge("answer", END)
graph = builder

# --- tests -------------------------------------------------------------------------------


def _settings(data_dir: Path, base_url: str, **options: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        model=f"openai-compatible:gpt-4o-mini@{base_url}",
        model_max_retries=0,
        graphs={"direct_models": GRAPH},
        assistants={
            "direct": {"graph_id": "direct_models", "options": {"base_url": base_url, **options}}
        },
    )


async def _rows(system: Any, run_id: str) -> dict[str, TraceStep]:
    async with system.db.session() as session:
        found = (
            await session.execute(select(TraceStep).where(TraceStep.run_id == run_id))
        ).scalars()
        return {row.node: row for row in found}


async def _usage_rows(system: Any) -> list[ProviderUsage]:
    await system.router_services.recorder.flush()
    async with system.db.session() as session:
        return list((await session.execute(select(ProviderUsage))).scalars())


async def test_direct_chat_model_calls_fill_the_step_from_callbacks(
    data_dir: Path, openai_stub: Any
) -> None:
    openai_stub.reply("a draft", usage={"prompt_tokens": 1000, "completion_tokens": 200})
    openai_stub.reply("the answer", usage={"prompt_tokens": 2000, "completion_tokens": 400})
    async with open_system(_settings(data_dir, openai_stub.base_url)) as system:
        summary = await Runner(system).run(
            RunRequest(principal=ANN, assistant_id="direct", input_text="hello")
        )
        assert summary.status == "success", summary.final_message
        assert summary.final_message == "the answer"
        rows = await _rows(system, summary.run_id)
        usage = await _usage_rows(system)

    assert [body["model"] for body in openai_stub.requests] == ["house-model", "gpt-4o-mini"]
    answered = rows["answer"]
    assert answered.status == "ok"
    assert (answered.alias, answered.deployment) == ("gpt-4o-mini", "openai:gpt-4o-mini")
    assert (answered.input_tokens, answered.output_tokens) == (2000, 400)
    price = Catalog.load().lookup("gpt-4o-mini")
    assert price is not None
    expected = price.price.cost(2000, 400)
    assert expected > 0 and answered.cost_usd == expected
    [call] = answered.model_calls
    assert call["source"] == "callback" and call["model_version"] == "gpt-4o-mini"
    assert call["cost_usd"] == expected and call["price_known"] is True
    assert 0 < call["latency_ms"] <= answered.latency_ms and call["error"] is None

    drafted = rows["draft"]  # not in the price table: cost unknown, never invented
    assert drafted.deployment == "openai:house-model"
    assert (drafted.input_tokens, drafted.output_tokens) == (1000, 200)
    [unpriced] = drafted.model_calls
    assert unpriced["cost_usd"] is None and unpriced["price_known"] is False
    assert drafted.cost_usd == 0.0
    assert usage == []  # the graph's own calls write no usage row of the router's


async def test_builtin_agent_rows_come_from_the_router_once(
    data_dir: Path, openai_stub: Any
) -> None:
    openai_stub.reply("done", usage={"prompt_tokens": 50, "completion_tokens": 7})
    settings = Settings(
        data_dir=data_dir,
        model=f"openai-compatible:gpt-4o-mini@{openai_stub.base_url}",
        model_max_retries=0,
    )
    async with open_system(settings) as system:
        summary = await Runner(system).run(RunRequest(principal=ANN, input_text="hi"))
        assert summary.status == "success", summary.final_message
        rows = await _rows(system, summary.run_id)
        usage = await _usage_rows(system)

    model = rows["model"]
    [call] = model.model_calls  # the router's record only, not the callback's too
    assert "source" not in call and call["paid_by"] == "deployment"
    assert model.alias == model.deployment == settings.model
    assert (model.input_tokens, model.output_tokens) == (50, 7)
    [row] = usage
    assert row.run_id == summary.run_id and row.cost_usd == model.cost_usd > 0
    assert rows["finish"].model_calls == []


async def test_router_call_without_call_info_is_filled_once_from_its_callback(
    data_dir: Path, openai_stub: Any
) -> None:
    """The router records such a call without the run (it was not told it), so the step
    would show nothing; the callback fills it, once."""
    openai_stub.reply("a draft", usage={"prompt_tokens": 10, "completion_tokens": 2})
    openai_stub.reply("routed", usage={"prompt_tokens": 300, "completion_tokens": 30})
    settings = _settings(data_dir, openai_stub.base_url, use_router=True)
    async with open_system(settings) as system:
        summary = await Runner(system).run(
            RunRequest(principal=ANN, assistant_id="direct", input_text="hello")
        )
        assert summary.final_message == "routed"
        rows = await _rows(system, summary.run_id)

    answered = rows["answer"]
    [call] = answered.model_calls
    assert call["source"] == "callback"
    assert answered.alias == answered.deployment == settings.model
    assert (answered.input_tokens, answered.output_tokens) == (300, 30)
    price = Catalog.load().lookup("gpt-4o-mini")
    assert price is not None and answered.cost_usd == price.price.cost(300, 30)


def test_router_type_matches_the_router() -> None:
    router = RouterChatModel(alias="a", deployments=[])
    assert router._llm_type == ROUTER_LLM_TYPE


def test_direct_model_call_spans_nest_under_their_node(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.runtime.trace_direct_model_run", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    spans = json.loads(result.stdout.strip().splitlines()[-1])
    by_id = {span["span_id"]: span for span in spans}
    [run] = [span for span in spans if span["name"] == "run"]
    models = {
        by_id[span["parent_id"]]["name"]: span for span in spans if span["name"] == "model call"
    }
    assert set(models) == {"node draft", "node answer"}
    assert all(by_id[s["parent_id"]]["parent_id"] == run["span_id"] for s in models.values())
    answered = models["node answer"]["attributes"]
    assert answered["relaygraph.deployment"] == "openai:gpt-4o-mini"
    assert answered["gen_ai.request.model"] == "gpt-4o-mini"
    assert answered["gen_ai.usage.input_tokens"] == 2000
    assert answered["gen_ai.usage.output_tokens"] == 400
    assert answered["relaygraph.cost_usd"] > 0
    assert "relaygraph.cost_usd" not in models["node draft"]["attributes"]


class _Rows:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add_rows(self, model: Any, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)


async def test_callback_only_usage_and_failed_calls_are_traced() -> None:
    """Tokens from ``llm_output`` when the message has no ``usage_metadata``; a failed
    call is listed with its error and no cost; a router call that recorded is skipped."""
    sink = _Rows()
    steps = StepTrace(run_id="r", thread_id="t", tenant="acme", sink=sink)
    handler = RunTracer(None, steps)
    node, ok, failed, routed = uuid4(), uuid4(), uuid4(), uuid4()
    where = {"langgraph_node": "n", "langgraph_step": 1, "checkpoint_ns": "n:1"}
    await handler.on_chain_start({}, {}, run_id=node, metadata=where, name="n")
    await handler.on_chat_model_start(
        {"kwargs": {"model_name": "gpt-4o-mini"}},
        [[]],
        run_id=ok,
        parent_run_id=node,
        metadata=where,
        invocation_params={"_type": "openai-chat"},
    )
    usage = {"prompt_tokens": 100, "completion_tokens": 10, "prompt_tokens_details": None}
    result = LLMResult(
        generations=[[ChatGeneration(message=AIMessage("x"))]],
        llm_output={"token_usage": usage, "model_name": "gpt-4o-mini-2024-07-18"},
    )
    await handler.on_llm_end(result, run_id=ok)
    await handler.on_chat_model_start(
        None,
        [[]],
        run_id=failed,
        metadata={**where, "ls_provider": "openai"},
        invocation_params={"model": "gpt-4o-mini"},
    )
    await handler.on_llm_error(RuntimeError("quota"), run_id=failed)
    await handler.on_chat_model_start(
        None, [[]], run_id=routed, metadata=where, invocation_params={"_type": ROUTER_LLM_TYPE}
    )
    steps.on_model_call(UsageRecord(tenant="acme", alias="a", deployment="d", node="n"))
    await handler.on_llm_end(result, run_id=routed)
    await handler.on_chain_end({}, run_id=node)

    [row] = sink.rows
    first, second, third = row["model_calls"]
    assert (first["deployment"], first["model_version"]) == (
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert (first["input_tokens"], first["output_tokens"]) == (100, 10)
    assert first["cost_usd"] > 0
    assert second["deployment"] == "openai:gpt-4o-mini" and second["error"] == "RuntimeError: quota"
    assert second["cost_usd"] == 0.0 and second["input_tokens"] == 0
    assert third["deployment"] == "d" and "source" not in third  # the router's own record
    assert row["input_tokens"] == 100 and row["cost_usd"] == first["cost_usd"]
