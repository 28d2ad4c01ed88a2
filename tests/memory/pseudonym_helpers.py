"""Shared set-up of the end-to-end pseudonym tests: a memory assistant whose model is the
real OpenAI client against the local stub, one run of an assistant, and what a run
recorded (its events, the thread's state, the outbox)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from graphs.agent import compile_agent
from identity import Principal
from runtime.runs import Runner, RunRequest, RunSummary
from runtime.settings import Settings
from store.models import Note, OutboxEmail, RunEvent

ALICE = Principal.with_roles("acme", "alice", ["user"])
BOB = Principal.with_roles("acme", "bob", ["user"])
FIRST = "maria.jensen@example.dk"
SECOND = "jens.hansen@example.com"
ANY_TOKEN = re.compile(r"<[A-Z_]+_\d+>")
ASSISTANT = "remembering"
STREAM = ("messages-tuple", "values", "updates")
MEMORY_ASSISTANTS = {ASSISTANT: {"graph_id": "agent", "options": {"memory": True}}}
"""The ``ASSISTANT``: the agent graph with long-term memory on."""


def stub_settings(
    data_dir: Path,
    openai_stub: Any,
    minimise: list[str] | None,
    assistants: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """Settings with the extra ``assistants`` (None: ``MEMORY_ASSISTANTS``) and
    ``privacy_minimise`` set to ``minimise`` (None: the default)."""
    levels = {} if minimise is None else {"privacy_minimise": minimise}
    return Settings(
        data_dir=data_dir,
        model="openai:gpt-4o-mini",
        openai_api_key="sk-test-key-0000000000",
        openai_base_url=openai_stub.base_url,
        model_max_retries=0,
        assistants=MEMORY_ASSISTANTS if assistants is None else assistants,
        **levels,
    )


async def run_turn(
    runner: Runner,
    principal: Principal,
    assistant: str,
    *,
    text: str | None = None,
    thread_id: str | None = None,
    decisions: Any = None,
    stream_mode: tuple[str, ...] = STREAM,
) -> RunSummary:
    """One run of ``assistant``: ``text`` as the user's new message, or ``decisions``
    resuming the thread's interrupt."""
    return await runner.run(
        RunRequest(
            principal=principal,
            assistant_id=assistant,
            thread_id=thread_id,
            input_text=text,
            decisions=decisions,
            stream_mode=stream_mode,
        )
    )


async def decide(
    runner: Runner, principal: Principal, assistant: str, thread_id: str, decision: Any
) -> RunSummary:
    """Resume the thread's interrupt with one reviewer ``decision``."""
    return await run_turn(
        runner, principal, assistant, thread_id=thread_id, decisions={"decisions": [decision]}
    )


async def approve(
    runner: Runner, principal: Principal, assistant: str, thread_id: str
) -> RunSummary:
    """Resume the thread's interrupt approving the pending action."""
    return await decide(runner, principal, assistant, thread_id, {"type": "approve"})


async def thread_state(
    system: Any, thread_id: str, compile_graph: Callable[[Any], Any] = compile_agent
) -> dict[str, Any]:
    """The values of the thread's latest checkpoint, read through ``compile_graph`` (the
    agent's graph unless told)."""
    snapshot = await compile_graph(system.checkpointer).aget_state(
        {"configurable": {"thread_id": thread_id}}
    )
    return dict(snapshot.values)


async def outbox(system: Any) -> list[tuple[Any, str]]:
    """(recipients, body) of every e-mail in the outbox."""
    async with system.db.session() as session:
        rows = (await session.execute(select(OutboxEmail))).scalars().all()
    return [(row.recipients, row.body) for row in rows]


async def note_bodies(system: Any, owner: str) -> list[str]:
    """The bodies of ``owner``'s notes, as the notes tools stored them."""
    async with system.db.session() as session:
        rows = (await session.execute(select(Note.body).where(Note.owner == owner))).all()
    return [row.body for row in rows]


async def run_events(system: Any, run_id: str) -> list[tuple[str, Any]]:
    """(event, data) of what the run recorded for its client, in order."""
    async with system.db.session() as session:
        rows = (
            (
                await session.execute(
                    select(RunEvent).where(RunEvent.run_id == run_id).order_by(RunEvent.seq)
                )
            )
            .scalars()
            .all()
        )
    return [(row.event, row.data) for row in rows]


def user_messages(request: dict[str, Any]) -> list[str]:
    """The user messages' contents in a request the model provider received."""
    return [m["content"] for m in request["messages"] if m["role"] == "user"]


async def the_next_turn_keeps_the_numbers(
    runner: Runner, openai_stub: Any, assistant: str, thread_id: str, earlier: str
) -> RunSummary:
    """Alice's next turn on the thread, whose ``earlier`` message (as the provider got it)
    made ``FIRST`` ``<EMAIL_1>``: the first address keeps its token and ``SECOND`` gets
    the next number; the provider sees neither address, the answer both."""
    openai_stub.reply("Writing to <EMAIL_2> and <EMAIL_1>.")
    text = f"Also write to {SECOND}, and to the first one."
    again = await run_turn(runner, ALICE, assistant, text=text, thread_id=thread_id)
    assert again.final_message == f"Writing to {SECOND} and {FIRST}."
    sent = openai_stub.requests[-1]
    assert FIRST not in json.dumps(sent) and SECOND not in json.dumps(sent)
    assert user_messages(sent) == [earlier, "Also write to <EMAIL_2>, and to the first one."]
    return again


async def assert_the_map_stays_in_its_thread(
    runner: Runner,
    openai_stub: Any,
    assistant: str,
    compile_graph: Callable[[Any], Any] = compile_agent,
) -> None:
    """After Alice's thread pseudonymised ``FIRST`` and ``SECOND``: another thread of hers,
    and a run of Bob's, whose model writes those tokens, get them back as tokens; neither
    run's events nor its thread's state (nor the model calls) hold either address."""
    openai_stub.reply("Hello <EMAIL_1>.")
    elsewhere = await run_turn(runner, ALICE, assistant, text="Who do I write to?")
    assert elsewhere.final_message == "Hello <EMAIL_1>."
    openai_stub.reply("Hello <EMAIL_1> and <EMAIL_2>.")
    bob = await run_turn(runner, BOB, assistant, text="Who do I write to?")
    assert bob.final_message == "Hello <EMAIL_1> and <EMAIL_2>."
    for run in (elsewhere, bob):
        seen = json.dumps(await run_events(runner.system, run.run_id))
        assert FIRST not in seen and SECOND not in seen
        assert "pseudonyms" not in await thread_state(runner.system, run.thread_id, compile_graph)
    assert FIRST not in json.dumps(openai_stub.requests[-2:])


def streamed_text(events: list[tuple[str, Any]]) -> str:
    """The text a client assembles from the run's streamed AI message chunks."""
    return "".join(chunk["content"] for chunk in ai_chunks(events))


def ai_chunks(events: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """The streamed AI message chunks among a run's recorded ``events``."""
    return [
        data[0]
        for name, data in events
        if name == "messages" and data[0]["type"] == "AIMessageChunk"
    ]
