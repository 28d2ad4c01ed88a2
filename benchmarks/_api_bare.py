"""The bare baseline server: FastAPI + LangGraph + a LangGraph checkpointer, nothing else.

``python -m benchmarks._api_bare --port P --saver sqlite --db PATH --graph trivial``

What a user would write without a runtime: no auth, no queue, no event log; a POST
runs ``graph.ainvoke`` in the request. Paths mirror LangGraph Server's so the load
client is the same for every stack:

- ``POST /threads`` → ``{"thread_id": ...}`` (nothing stored: the checkpointer creates
  the thread on the first run)
- ``POST /threads/{thread_id}/runs/wait`` and ``POST /runs/wait`` → the final values
- ``POST /sleep`` → sleeps ``--delay`` seconds (the plain-endpoint baseline)
- ``POST /call`` → one stub "model call" with no graph (body ``{"stub_url", "via"}``)
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import uvicorn
from fastapi import Body, FastAPI

from benchmarks._api_graph import build_slow, build_trivial


def create_app(saver_kind: str, db_path: str | None, graph_name: str, delay: float) -> FastAPI:
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            checkpointer: Any = None
            if saver_kind == "sqlite":
                from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

                assert db_path, "--db is required with --saver sqlite"
                checkpointer = await stack.enter_async_context(
                    AsyncSqliteSaver.from_conn_string(db_path)
                )
            elif saver_kind == "memory":
                from langgraph.checkpoint.memory import InMemorySaver

                checkpointer = InMemorySaver()
            builder = build_slow() if graph_name == "slow" else build_trivial()
            state["graph"] = builder.compile(checkpointer=checkpointer, name=graph_name)
            yield

    app = FastAPI(lifespan=lifespan)

    async def invoke(thread_id: str, body: dict[str, Any]) -> Any:
        config = {"configurable": {"thread_id": thread_id}}
        return await state["graph"].ainvoke(body.get("input") or {}, config)

    @app.get("/ok")
    async def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/threads")
    async def create_thread() -> dict[str, str]:
        return {"thread_id": str(uuid.uuid4())}

    @app.post("/threads/{thread_id}/runs/wait")
    async def wait_thread_run(thread_id: str, body: dict[str, Any] = Body(...)) -> Any:
        return await invoke(thread_id, body)

    @app.post("/runs/wait")
    async def wait_run(body: dict[str, Any] = Body(...)) -> Any:
        return await invoke(str(uuid.uuid4()), body)

    @app.post("/sleep")
    async def sleep() -> dict[str, bool]:
        await asyncio.sleep(delay)
        return {"ok": True}

    @app.post("/call")
    async def call(body: dict[str, Any] = Body(...)) -> dict[str, Any]:
        from benchmarks._api_graph import model_call

        return await model_call({"n": 0, "stub_url": body["stub_url"], "via": body.get("via")})

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._api_bare")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--saver", choices=("sqlite", "memory", "none"), default="sqlite")
    parser.add_argument("--db", default=None, help="SQLite file for --saver sqlite")
    parser.add_argument("--graph", choices=("trivial", "slow"), default="trivial")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds for POST /sleep")
    args = parser.parse_args(argv)
    app = create_app(args.saver, args.db, args.graph, args.delay)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
