"""Graphs for the API benchmarks (``api_throughput``, ``concurrent_slow_runs``).

Served by every stack under test: relaygraph loads them as user graphs
(``RELAYGRAPH_GRAPHS='{"trivial": "benchmarks._api_graph:graph"}'``), the bare
FastAPI baseline compiles them with its own checkpointer, and ``langgraph dev``
loads this file by path (so it imports nothing but LangGraph and httpx).

``graph``: three trivial nodes over ``{"n": int}``.
``slow_graph``: three nodes; the middle one is a "model call", one HTTP POST of a
chat completion to the stub at ``state["stub_url"]`` (``benchmarks._api_stub``),
through one shared ``httpx.AsyncClient`` per process, like an OpenAI SDK client
(``state["via"]`` can pick aiohttp, or a plain sleep, instead).
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph


class TrivialState(TypedDict):
    n: int


def _bump(state: TrivialState) -> dict[str, Any]:
    return {"n": state.get("n", 0) + 1}


def build_trivial() -> StateGraph:
    builder = StateGraph(TrivialState)
    builder.add_node("first", _bump)
    builder.add_node("second", _bump)
    builder.add_node("third", _bump)
    builder.add_edge(START, "first")
    builder.add_edge("first", "second")
    builder.add_edge("second", "third")
    builder.add_edge("third", END)
    return builder


class SlowState(TypedDict, total=False):
    n: int
    stub_url: str
    via: str
    """How the model call is made: "httpx" (default), "aiohttp", or "sleep" (no HTTP:
    ``asyncio.sleep(SLEEP_SECONDS)``)."""
    reply: str


SLEEP_SECONDS = 2.0
_clients: dict[str, Any] = {}
_REQUEST = {"model": "stub", "messages": [{"role": "user", "content": "hi"}]}


def _client(kind: str) -> Any:
    """One pooled client per process and kind (made on first use, inside the loop)."""
    if kind not in _clients:
        if kind == "aiohttp":
            import aiohttp

            _clients[kind] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                timeout=aiohttp.ClientTimeout(total=120),
            )
        else:
            import httpx

            _clients[kind] = httpx.AsyncClient(
                timeout=httpx.Timeout(120.0),
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=2000),
                trust_env=False,
            )
    return _clients[kind]


async def model_call(state: SlowState) -> dict[str, Any]:
    via = state.get("via") or "httpx"
    if via == "sleep":
        import asyncio

        await asyncio.sleep(SLEEP_SECONDS)
        return {"n": state.get("n", 0) + 1, "reply": "slept"}
    url = f"{state['stub_url'].rstrip('/')}/chat/completions"
    if via == "aiohttp":
        async with _client("aiohttp").post(url, json=_REQUEST) as response:
            response.raise_for_status()
            body = await response.json()
    else:
        response = await _client("httpx").post(url, json=_REQUEST)
        response.raise_for_status()
        body = response.json()
    return {"n": state.get("n", 0) + 1, "reply": body["choices"][0]["message"]["content"]}


def build_slow() -> StateGraph:
    builder = StateGraph(SlowState)
    builder.add_node("prepare", _bump)
    builder.add_node("model", model_call)
    builder.add_node("finish", _bump)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "model")
    builder.add_edge("model", "finish")
    builder.add_edge("finish", END)
    return builder


# Compiled without a checkpointer: each server attaches its own.
graph = build_trivial().compile(name="trivial")
slow_graph = build_slow().compile(name="slow")
