"""Pseudonyms restored in what a run streams (memory/restore_stream.py through the event
log): the model, behind a local OpenAI stub, sees ``<PERSON_1>`` for the user's recalled
name and streams it split across chunks; the user's SSE ``messages`` events, ``values``
and the final answer show the name, a rejoin with ``Last-Event-ID`` replays the same, and
another user's run (own memory, or none) never gets this user's value."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiServer
from tests.memory.documents_helpers import warm_model_cache

ASSISTANT = "remembering"
ANSWER = ["Your", " name", " is", " <PER", "SON", "_1>", "."]
STREAM = {"stream_mode": ["messages-tuple", "values", "updates"], "on_disconnect": "continue"}


@pytest.fixture
def server(serve: Any, openai_stub: Any, data_dir: Any, tmp_path_factory: Any) -> ApiServer:
    warm_model_cache(tmp_path_factory, data_dir / "models")
    started: ApiServer = serve(
        workers=1,
        model="openai:gpt-4o-mini",
        openai_api_key="sk-test-key-0000000000",
        openai_base_url=openai_stub.base_url,
        privacy_minimise=["special", "personal"],
        assistants={ASSISTANT: {"graph_id": "agent", "options": {"memory": True}}},
    )
    return started


def _client(server: ApiServer, who: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, headers=server.headers(who), timeout=60)


def _body(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "assistant_id": ASSISTANT,
        "input": {"messages": [{"role": "user", "content": text}]},
        **extra,
    }


async def _remember(client: httpx.AsyncClient, text: str) -> None:
    """A turn whose fact the remember node stores in the background; waits until it is."""
    thread = (await client.post("/threads", json={})).json()["thread_id"]
    done = await client.post(f"/threads/{thread}/runs/wait", json=_body(text))
    assert done.status_code == 200, done.text
    async with asyncio.timeout(30):
        while not (await client.get("/memories")).json():
            await asyncio.sleep(0.05)


async def _events(response: httpx.Response) -> list[tuple[int, str, Any]]:
    """(id, event, data) of an SSE response."""
    events: list[tuple[int, str, Any]] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in fields:
                events.append(
                    (int(fields.get("id", 0)), fields["event"], json.loads(fields["data"]))
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    return events


async def _ask_streamed(
    client: httpx.AsyncClient, text: str
) -> tuple[list[tuple[int, str, Any]], str]:
    thread = (await client.post("/threads", json={})).json()["thread_id"]
    async with client.stream(
        "POST", f"/threads/{thread}/runs/stream", json=_body(text, **STREAM)
    ) as response:
        assert response.status_code == 200
        location = response.headers["content-location"]
        return await _events(response), location


def _streamed_text(events: list[tuple[int, str, Any]]) -> tuple[str, list[str]]:
    """The AI text the ``messages`` events spell out, and its pieces."""
    pieces = [
        data[0]["content"]
        for _, name, data in events
        if name == "messages" and data[0]["type"] == "AIMessageChunk"
    ]
    return "".join(pieces), pieces


async def test_streamed_tokens_show_the_users_own_values(
    server: ApiServer, openai_stub: Any
) -> None:
    async with (
        _client(server, "alice") as alice,
        _client(server, "bob") as bob,
        _client(server, "rita") as rita,
    ):
        openai_stub.reply("Noted.")
        await _remember(alice, "Remember that my name is Maria Jensen.")
        openai_stub.reply("Noted.")
        await _remember(bob, "Remember that my name is Mette Hansen.")

        openai_stub.reply("".join(ANSWER), pieces=ANSWER)
        events, location = await _ask_streamed(alice, "What is my name?")
        sent = json.dumps(openai_stub.requests[-1])
        assert "<PERSON_1>" in sent and "Maria Jensen" not in sent  # what the provider saw

        text, pieces = _streamed_text(events)
        assert text == "Your name is Maria Jensen."
        assert "Maria Jensen" in pieces  # restored once the token's last piece arrived
        assert all("<" not in piece for piece in pieces), pieces
        for event in events:  # values and updates events agree with the text
            assert "<PERSON" not in json.dumps(event[2]), event
        last_values = [data for _, name, data in events if name == "values"][-1]
        assert last_values["final_message"] == "Your name is Maria Jensen."
        assert last_values["messages"][-1]["content"] == "Your name is Maria Jensen."
        ids = [event_id for event_id, _, _ in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        # A rejoin from the middle of the stream replays exactly the same events.
        middle = ids[len(ids) // 2]
        async with alice.stream(
            "GET",
            f"{location}/stream",
            params={"stream_mode": ["messages-tuple", "values", "updates"]},
            headers={"Last-Event-ID": str(middle)},
        ) as response:
            rejoined = await _events(response)
        assert [event for event in rejoined if event[1] != "end"] == [
            event for event in events if event[0] > middle and event[1] != "end"
        ]
        joined = (await alice.get(f"{location}/join")).json()
        assert joined["final_message"] == "Your name is Maria Jensen."
        assert joined["messages"][-1]["content"] == "Your name is Maria Jensen."
        thread = location.split("/")[2]
        state = (await alice.get(f"/threads/{thread}/state")).json()
        assert state["values"]["messages"][-1]["content"] == "Your name is Maria Jensen."
        assert "pseudonyms" not in state["values"] and "<PERSON" not in json.dumps(state)

        # The next turn: the stored answer reaches the provider with the token again.
        openai_stub.reply("Anything else, <PERSON_1>?")
        again = await alice.post(
            f"/threads/{thread}/runs/wait", json=_body("Thanks!", stream_mode=["values"])
        )
        assert again.json()["messages"][-1]["content"] == "Anything else, Maria Jensen?"
        sent = json.dumps(openai_stub.requests[-1])
        assert "Your name is <PERSON_1>." in sent and "Maria Jensen" not in sent
        history = (await alice.get(f"/threads/{thread}/state")).json()["values"]["messages"]
        assert [m["content"] for m in history if m["type"] == "ai"] == [
            "Your name is Maria Jensen.",
            "Anything else, Maria Jensen?",
        ]

        # Another user asking the same way gets their own value, or the token: never Maria.
        openai_stub.reply("".join(ANSWER), pieces=ANSWER)
        bob_events, _ = await _ask_streamed(bob, "What is my name?")
        assert _streamed_text(bob_events)[0] == "Your name is Mette Hansen."
        assert "Maria" not in json.dumps(bob_events)
        openai_stub.reply("".join(ANSWER), pieces=ANSWER)
        rita_events, _ = await _ask_streamed(rita, "What is my name?")  # tenant a, no memory
        assert _streamed_text(rita_events)[0] == "Your name is <PERSON_1>."
        assert "Maria" not in json.dumps(rita_events)
