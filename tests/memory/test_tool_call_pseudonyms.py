"""Pseudonyms in tool calls (issue 5, minimisation): the model, behind a local OpenAI stub,
sees ``<EMAIL_1>`` for the e-mail address a recalled memory holds and writes it in a tool
call. The tool, the approval interrupt a reviewer sees, the outbox and the stored history
get the address (tools and reviewers are inside our boundary); the next model call sees
the token again in the assistant's tool-call arguments and in the tool result, never the
address. Another user's run never gets the map."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from identity import Principal
from runtime.memory_services import LazyMemoryServices
from runtime.runs import Runner, RunSummary
from runtime.settings import Settings
from tests.helpers import call
from tests.memory.memory_helpers import WordHashEmbedder
from tests.memory.pseudonym_helpers import (
    ALICE,
    ASSISTANT,
    BOB,
    FIRST,
    approve,
    note_bodies,
    outbox,
    run_turn,
    stub_settings,
    thread_state,
)

ADDRESS = FIRST
TOKEN = "<EMAIL_1>"


@pytest.fixture
def settings(data_dir: Path, openai_stub: Any) -> Settings:
    return stub_settings(data_dir, openai_stub, ["special", "personal"])


@pytest.fixture
async def runner(system: Any) -> Runner:
    """A runner on the test's system (conftest's, on these settings), whose memories, embedded
    by a word-hash embedder, hold Alice's e-mail address."""
    system.memory = LazyMemoryServices(system, embedder=WordHashEmbedder())
    await _remember_address(system)
    return Runner(system)


async def _run(runner: Runner, principal: Principal, text: str) -> RunSummary:
    return await run_turn(runner, principal, ASSISTANT, text=text)


async def _remember_address(system: Any) -> None:
    # Saved directly: the remember node's fact extractor ends a fact at the first "."
    # (memory.nodes._FACT), which cuts an address such as this one short.
    services = await system.memory.get()
    await services.memories.remember(ALICE, f"My email is {ADDRESS}")
    stored = await services.memories.list_memories(tenant="acme", user="alice")
    assert [m.text for m in stored] == [f"My email is {ADDRESS}"]


def _tool_exchange(request: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """The arguments of the assistant's tool call and the tool's result, as ``request``
    showed them to the model."""
    messages = list(request["messages"])
    assistant = next(m for m in messages if m.get("tool_calls"))
    tool_result = next(m for m in messages if m["role"] == "tool")
    arguments = json.loads(assistant["tool_calls"][0]["function"]["arguments"])
    return arguments, json.loads(tool_result["content"])


async def _stored_messages(system: Any, thread_id: str) -> list[Any]:
    return list((await thread_state(system, thread_id))["messages"])


async def test_a_tool_gets_the_value_and_the_provider_the_token(
    system: Any, runner: Runner, openai_stub: Any
) -> None:
    openai_stub.reply(
        "Saving it.",
        tool_calls=[call("notes_create", title="Contact", body=f"Write to {TOKEN} about my email")],
    )
    openai_stub.reply(f"Saved a note to write to {TOKEN}.")
    done = await _run(runner, ALICE, "Make a note to write to my email address.")
    assert done.stop_reason == "completed", done
    assert done.final_message == f"Saved a note to write to {ADDRESS}."

    first, second = openai_stub.requests[-2:]
    assert TOKEN in json.dumps(first) and ADDRESS not in json.dumps(first)
    # The next call: the token, never the address, in the assistant's tool call and the
    # tool result (the note as notes_create returned it).
    assert ADDRESS not in json.dumps(second)
    arguments, tool_result = _tool_exchange(second)
    assert arguments == {"title": "Contact", "body": f"Write to {TOKEN} about my email"}
    assert tool_result["body"] == f"Write to {TOKEN} about my email"

    # The tool acted on the address.
    assert await note_bodies(system, "alice") == [f"Write to {ADDRESS} about my email"]

    stored = await _stored_messages(system, done.thread_id)
    ai_message = next(m for m in stored if m.type == "ai" and m.tool_calls)
    assert ai_message.tool_calls[0]["args"]["body"] == f"Write to {ADDRESS} about my email"
    assert TOKEN not in json.dumps([m.model_dump() for m in stored])

    # Another user whose model writes the same token: it stays a token (no map of
    # theirs knows it), and Alice's address is nowhere in their run.
    openai_stub.reply("Saving it.", tool_calls=[call("notes_create", title="Contact", body=TOKEN)])
    openai_stub.reply("Done.")
    other = await _run(runner, BOB, "Make a note to write to my email address.")
    assert other.stop_reason == "completed", other
    assert ADDRESS not in json.dumps(openai_stub.requests[-2:])
    assert await note_bodies(system, "bob") == [TOKEN]
    bob_stored = await _stored_messages(system, other.thread_id)
    assert ADDRESS not in json.dumps([m.model_dump() for m in bob_stored])


async def test_a_reviewer_sees_the_value_in_the_approval_request(
    system: Any, runner: Runner, openai_stub: Any
) -> None:
    openai_stub.reply(
        tool_calls=[call("email_send", to=[TOKEN], subject="Hello", body=f"Hi {TOKEN}!")]
    )
    paused = await _run(runner, ALICE, "Send me a hello email.")
    assert paused.stop_reason == "waiting_for_human", paused
    request = paused.interrupt["action_requests"][0]
    assert request["name"] == "email_send"
    assert request["args"] == {"to": [ADDRESS], "subject": "Hello", "body": f"Hi {ADDRESS}!"}
    assert not re.search(r"<EMAIL_\d+>", json.dumps(paused.interrupt))
    assert ADDRESS not in json.dumps(openai_stub.requests[-1])

    openai_stub.reply("Sent.")
    done = await approve(runner, ALICE, ASSISTANT, paused.thread_id)
    assert done.stop_reason == "completed", done
    assert await outbox(system) == [([ADDRESS], f"Hi {ADDRESS}!")]
    after = openai_stub.requests[-1]
    assert ADDRESS not in json.dumps(after)
    arguments, tool_result = _tool_exchange(after)
    assert arguments == {"to": [TOKEN], "subject": "Hello", "body": f"Hi {TOKEN}!"}
    assert tool_result["recipients"] == [TOKEN]
