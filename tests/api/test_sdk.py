"""The official langgraph-sdk Python client against a real relaygraph server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError

from tests.helpers import call

pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)

SLOW_MODEL = f"scripted:{Path(__file__).with_name('slow_model.py')}:turn"
DELETE_TURNS = [
    {"content": "saving", "tool_calls": [call("notes_create", title="keep", body="1")]},
    {"content": "deleting", "tool_calls": [call("notes_delete", note_id=1)]},
    {"content": "finished"},
]
HELLO = {"messages": [{"role": "user", "content": "tidy up"}]}


def _client(server: Any, who: str = "alice") -> Any:
    return get_client(url=server.base_url, api_key=server.keys[who])


async def test_stream_interrupt_state_resume_history(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(DELETE_TURNS)
    client = _client(server)
    thread = await client.threads.create(metadata={"purpose": "test"})
    created: list[Any] = []
    parts = [
        part
        async for part in client.runs.stream(
            thread["thread_id"],
            "agent",
            input=HELLO,
            stream_mode=["values", "updates", "messages-tuple"],
            on_run_created=created.append,
        )
    ]
    events = [part.event for part in parts]
    assert events[0] == "metadata" and created and created[0]["run_id"] == parts[0].data["run_id"]
    assert {"values", "updates", "messages"} <= set(events)
    assert parts[-1].event == "values" and "__interrupt__" in parts[-1].data
    interrupt_updates = [
        p.data for p in parts if p.event == "updates" and "__interrupt__" in p.data
    ]
    request = interrupt_updates[0]["__interrupt__"][0]["value"]["action_requests"][0]
    assert (request["name"], request["args"]) == ("notes_delete", {"note_id": 1})
    message, metadata = next(p.data for p in parts if p.event == "messages")
    assert message["type"] == "ai" and metadata["langgraph_node"] == "model"

    state = await client.threads.get_state(thread["thread_id"])
    assert state["next"] == ["gate"] and state["interrupts"]
    assert (
        state["tasks"][0]["interrupts"][0]["value"]["action_requests"][0]["name"] == "notes_delete"
    )
    fetched = await client.threads.get(thread["thread_id"])
    assert fetched["status"] == "interrupted"
    assert fetched["metadata"]["graph_id"] == "agent" and fetched["metadata"]["purpose"] == "test"
    (interrupts,) = fetched["interrupts"].values()
    assert interrupts[0]["id"] == state["interrupts"][0]["id"]
    waiting = await client.threads.search(status="interrupted")
    assert [t["thread_id"] for t in waiting] == [thread["thread_id"]]

    result = await client.runs.wait(
        thread["thread_id"],
        "agent",
        input={},
        command={"resume": {"decisions": [{"type": "approve"}]}},
    )
    assert result["messages"][-1]["content"] == "finished"
    assert (await client.threads.get(thread["thread_id"]))["status"] == "idle"
    history = await client.threads.get_history(thread["thread_id"], limit=100)
    assert len(history) > 5 and history[0]["values"]["messages"][-1]["content"] == "finished"
    assert [r["status"] for r in await client.runs.list(thread["thread_id"])] == ["success"] * 2


async def test_agent_inbox_style_resume_and_fork_from_checkpoint(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(DELETE_TURNS * 2)
    client = _client(server)
    thread = await client.threads.create()
    tid = thread["thread_id"]
    await client.runs.wait(tid, "agent", input=HELLO)
    # Agent Inbox's older response list, sent as a background run.
    run = await client.runs.create(
        tid, "agent", command={"resume": [{"type": "ignore", "args": None}]}
    )
    await client.runs.join(tid, run["run_id"])
    state = await client.threads.get_state(tid)
    tool_messages = [m for m in state["values"]["messages"] if m["type"] == "tool"]
    assert tool_messages[-1]["status"] == "error" and "rejected" in tool_messages[-1]["content"]


async def test_fork_from_an_earlier_checkpoint(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve([{"content": "one"}, {"content": "two"}, {"content": "three"}])
    client = _client(server)
    tid = (await client.threads.create())["thread_id"]
    first = {"messages": [{"role": "user", "content": "first"}]}
    await client.runs.wait(tid, "agent", input=first)
    await client.runs.wait(
        tid, "agent", input={"messages": [{"role": "user", "content": "second"}]}
    )
    history = await client.threads.get_history(tid, limit=100)
    after_first = next(h for h in history if not h["next"] and len(h["values"]["messages"]) == 2)
    forked = await client.runs.wait(
        tid,
        "agent",
        input={"messages": [{"role": "user", "content": "other"}]},
        checkpoint=after_first["checkpoint"],
    )
    humans = [m["content"] for m in forked["messages"] if m["type"] == "human"]
    assert humans == ["first", "other"]
    state = await client.threads.get_state(tid)
    assert state["parent_checkpoint"]["checkpoint_id"] != after_first["checkpoint"]["checkpoint_id"]
    assert [m["content"] for m in state["values"]["messages"] if m["type"] == "human"] == humans


async def test_cancel_stops_the_run_within_a_second(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(model=SLOW_MODEL)
    client = _client(server)
    tid = (await client.threads.create())["thread_id"]
    run = await client.runs.create(tid, "agent", input=HELLO)
    await _wait_status(client, tid, run["run_id"], {"running"})
    loop = asyncio.get_running_loop()
    started = loop.time()
    await client.runs.cancel(tid, run["run_id"], wait=True)
    assert loop.time() - started < 1.0
    assert (await client.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await client.threads.get(tid))["status"] == "idle"
    # The thread continues from its last checkpoint.
    resumed = await client.runs.wait(tid, "agent")
    assert resumed["messages"][-1]["content"] == "finished: tidy up"


@pytest.mark.parametrize("strategy", ["reject", "enqueue", "interrupt", "rollback"])
async def test_multitask_strategies(serve, strategy: str) -> None:  # type: ignore[no-untyped-def]
    server = serve(model=SLOW_MODEL)
    client = _client(server)
    tid = (await client.threads.create())["thread_id"]
    first = await client.runs.create(tid, "agent", input=HELLO)
    await _wait_status(client, tid, first["run_id"], {"running"})
    second_input = {"messages": [{"role": "user", "content": "second"}]}
    if strategy == "reject":
        with pytest.raises(ConflictError):
            await client.runs.create(tid, "agent", input=second_input, multitask_strategy="reject")
        await client.runs.join(tid, first["run_id"])
        assert (await client.runs.get(tid, first["run_id"]))["status"] == "success"
        return
    second = await client.runs.create(tid, "agent", input=second_input, multitask_strategy=strategy)
    final = await client.runs.join(tid, second["run_id"])
    assert final["messages"][-1]["content"] == "finished: second"
    runs = {r["run_id"]: r["status"] for r in await client.runs.list(tid)}
    if strategy == "enqueue":
        assert runs == {first["run_id"]: "success", second["run_id"]: "success"}
    elif strategy == "interrupt":
        assert runs == {first["run_id"]: "interrupted", second["run_id"]: "success"}
        humans = [m["content"] for m in final["messages"] if m["type"] == "human"]
        assert humans == ["tidy up", "second"]
    else:  # rollback deletes the first run and its checkpoints
        assert runs == {second["run_id"]: "success"}
        humans = [m["content"] for m in final["messages"] if m["type"] == "human"]
        assert humans == ["second"]


async def test_rejoined_stream_yields_every_event_exactly_once(serve) -> None:  # type: ignore[no-untyped-def]
    server = serve(model=SLOW_MODEL)
    headers = server.headers("alice")
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as http:
        tid = (await http.post("/threads", json={})).json()["thread_id"]
        body = {
            "assistant_id": "agent",
            "input": HELLO,
            "stream_mode": ["updates"],
            "on_disconnect": "continue",
        }
        first_ids: list[int] = []
        async with http.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response:
            location = response.headers["content-location"]
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    first_ids.append(int(line[3:].strip()))
                if len(first_ids) == 3:
                    break  # drop the connection mid-run
        rest_ids: list[int] = []
        events: list[str] = []
        async with http.stream(
            "GET", f"{location}/stream", headers={"Last-Event-ID": str(first_ids[-1])}
        ) as response:
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    rest_ids.append(int(line[3:].strip()))
                if line.startswith("event:"):
                    events.append(line[6:].strip())
        run = (await http.get(location)).json()
    assert run["status"] == "success"
    ids = first_ids + rest_ids
    assert ids == list(range(1, len(ids) + 1)), "gap or duplicate in the rejoined stream"
    assert events.count("updates") >= 2 * 6


async def _wait_status(client: Any, tid: str, run_id: str, statuses: set[str]) -> None:
    async with asyncio.timeout(20):
        while (await client.runs.get(tid, run_id))["status"] not in statuses:
            await asyncio.sleep(0.02)
