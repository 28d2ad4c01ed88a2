"""Personal data the user types, minimised in an agent run without long-term memory (issue 5):
the built-in ``agent`` assistant (no ``memory`` option), with the real OpenAI client against
the local stub, sends ``<EMAIL_1>`` where the user typed an address, while the tool, the
streamed tokens and tool calls, the approval a reviewer sees, the stored history and the
final answer show the address. Tokens keep their numbers across the thread's turns;
another thread or user never gets the map; ``privacy_minimise`` decides what is minimised
and, empty, leaves every message as typed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from identity import Principal
from memory.restore_stream import StreamRestorer
from runtime.runs import Runner, RunRequest, RunSummary
from runtime.settings import Settings
from runtime.system import open_system
from tests.helpers import call
from tests.memory.pseudonym_helpers import (
    ALICE,
    ANY_TOKEN,
    FIRST,
    SECOND,
    STREAM,
    ai_chunks,
    approve,
    assert_the_map_stays_in_its_thread,
    note_bodies,
    outbox,
    run_events,
    run_turn,
    streamed_text,
    stub_settings,
    the_next_turn_keeps_the_numbers,
    thread_state,
    user_messages,
)

ASSISTANT = "agent"
"""The built-in assistant: no ``memory`` option."""


def _settings(data_dir: Path, openai_stub: Any, minimise: list[str] | None) -> Settings:
    return stub_settings(data_dir, openai_stub, minimise, assistants={})


SENT_FIRST = "Please make a note: I must write to <EMAIL_1> today."
"""The first turn's message as the model provider gets it."""


async def _run(
    runner: Runner, principal: Principal, text: str, thread_id: str | None = None
) -> RunSummary:
    return await run_turn(runner, principal, ASSISTANT, text=text, thread_id=thread_id)


def _streamed_arguments(events: list[tuple[str, Any]]) -> dict[str, Any]:
    """The arguments of the run's first tool call as a client accumulates them from the
    streamed pieces."""
    pieces = [
        piece["args"]
        for chunk in ai_chunks(events)
        for piece in chunk.get("tool_call_chunks") or []
        if piece.get("index") == 0 and piece.get("args")
    ]
    return dict(json.loads("".join(pieces)))


async def test_typed_personal_data_reaches_the_provider_as_tokens_only(
    data_dir: Path, openai_stub: Any
) -> None:
    async with open_system(_settings(data_dir, openai_stub, ["special", "personal"])) as system:
        runner = Runner(system)

        openai_stub.reply(
            "Saving it.",
            tool_calls=[call("notes_create", title="Contact", body="Write <EMAIL_1>")],
        )
        # The token reaches the stream split across chunks.
        openai_stub.reply(
            "Noted: write to <EMAIL_1>.", pieces=["Noted: write to <EM", "AIL", "_1>", "."]
        )
        done = await _run(runner, ALICE, f"Please make a note: I must write to {FIRST} today.")
        assert done.stop_reason == "completed", done
        assert done.final_message == f"Noted: write to {FIRST}."

        first, second = openai_stub.requests[-2:]
        assert user_messages(first) == [SENT_FIRST]
        assert FIRST not in json.dumps(first) and FIRST not in json.dumps(second)
        # The tool acted on the address.
        assert await note_bodies(system, "alice") == [f"Write {FIRST}"]

        events = await run_events(system, done.run_id)
        assert streamed_text(events) == f"Saving it.Noted: write to {FIRST}."
        assert _streamed_arguments(events) == {"title": "Contact", "body": f"Write {FIRST}"}
        assert not ANY_TOKEN.search(json.dumps(events)), "a token reached the user's stream"
        assert FIRST in json.dumps([data for name, data in events if name == "values"])

        # The next turn: the first address keeps its token, a new one gets the next number.
        again = await the_next_turn_keeps_the_numbers(
            runner, openai_stub, ASSISTANT, done.thread_id, SENT_FIRST
        )
        seen = json.dumps(await run_events(system, again.run_id))
        assert not ANY_TOKEN.search(seen) and '"pseudonyms"' not in seen  # a private channel

        # A run that stops before any model call (so before the saved map is read): its
        # events, the end's final values included, still leave the private channel out.
        held = await runner.run(
            RunRequest(
                principal=ALICE,
                assistant_id=ASSISTANT,
                thread_id=done.thread_id,
                input_text="One more thing.",
                stream_mode=STREAM,
                interrupt_before=["model"],
            )
        )
        ended = await run_events(system, held.run_id)
        assert ended[-1][0] == "end" and FIRST in json.dumps(ended[-1][1]["values"])
        assert '"pseudonyms"' not in json.dumps(ended) and not ANY_TOKEN.search(json.dumps(ended))

        state = await thread_state(system, done.thread_id)
        humans = [m.content for m in state["messages"] if m.type == "human"]
        assert humans == [
            f"Please make a note: I must write to {FIRST} today.",
            f"Also write to {SECOND}, and to the first one.",
            "One more thing.",
        ]
        assert state["pseudonyms"] == {"acme": {"alice": {"<EMAIL_1>": FIRST, "<EMAIL_2>": SECOND}}}
        assert not ANY_TOKEN.search(json.dumps([m.model_dump() for m in state["messages"]]))

        # Another thread of the same user, and another user: the map is not theirs.
        await assert_the_map_stays_in_its_thread(runner, openai_stub, ASSISTANT)


async def test_a_reviewer_sees_the_typed_value_and_the_provider_its_token(
    data_dir: Path, openai_stub: Any
) -> None:
    async with open_system(_settings(data_dir, openai_stub, ["special", "personal"])) as system:
        runner = Runner(system)
        openai_stub.reply(
            tool_calls=[call("email_send", to=["<EMAIL_1>"], subject="Hi", body="Hi <EMAIL_1>!")]
        )
        paused = await _run(runner, ALICE, f"Send a hello email to {FIRST}.")
        assert paused.stop_reason == "waiting_for_human", paused
        assert user_messages(openai_stub.requests[-1]) == ["Send a hello email to <EMAIL_1>."]
        request = paused.interrupt["action_requests"][0]
        assert request["name"] == "email_send"
        assert request["args"] == {"to": [FIRST], "subject": "Hi", "body": f"Hi {FIRST}!"}
        assert not ANY_TOKEN.search(json.dumps(paused.interrupt))
        events = await run_events(system, paused.run_id)
        assert not ANY_TOKEN.search(json.dumps(events)), "a token reached the user's stream"
        assert "__interrupt__" in json.dumps(events)

        openai_stub.reply("Sent to <EMAIL_1>.")
        done = await approve(runner, ALICE, ASSISTANT, paused.thread_id)
        assert done.stop_reason == "completed", done
        assert done.final_message == f"Sent to {FIRST}."
        assert await outbox(system) == [([FIRST], f"Hi {FIRST}!")]
        after = openai_stub.requests[-1]
        assert FIRST not in json.dumps(after)
        assistant = next(m for m in after["messages"] if m.get("tool_calls"))
        arguments = json.loads(assistant["tool_calls"][0]["function"]["arguments"])
        assert arguments == {"to": ["<EMAIL_1>"], "subject": "Hi", "body": "Hi <EMAIL_1>!"}


@pytest.mark.parametrize("minimise", [None, []], ids=["default-special", "off"])
async def test_the_setting_decides_what_is_minimised(
    data_dir: Path, openai_stub: Any, minimise: list[str] | None
) -> None:
    async with open_system(_settings(data_dir, openai_stub, minimise)) as system:
        runner = Runner(system)

        # An address alone is personal, not special: sent as typed under either setting.
        openai_stub.reply("Sure.")
        plain = await _run(runner, ALICE, f"Please write to {FIRST} today.")
        assert plain.final_message == "Sure."
        assert user_messages(openai_stub.requests[-1]) == [f"Please write to {FIRST} today."]
        assert "pseudonyms" not in await thread_state(system, plain.thread_id)

        openai_stub.reply("I will send <EMAIL_1> the <HEALTH_2> news.")
        text = f"My doctor says I have diabetes; send the results to {FIRST}"
        special = await _run(runner, ALICE, text)
        sent = user_messages(openai_stub.requests[-1])[-1]
        if minimise is None:  # special-category text: every finding in it becomes a token
            assert sent == "My <HEALTH_1> says I have <HEALTH_2>; send the results to <EMAIL_1>"
            assert special.final_message == f"I will send {FIRST} the diabetes news."
            assert "pseudonyms" in await thread_state(system, special.thread_id)
        else:  # minimisation off: sent as typed, and a token the model invents stays one
            assert sent == text
            assert special.final_message == "I will send <EMAIL_1> the <HEALTH_2> news."
            assert "pseudonyms" not in await thread_state(system, special.thread_id)


def test_the_private_channel_is_left_out_before_the_run_has_a_map() -> None:
    saved = {"acme": {"alice": {"<EMAIL_1>": FIRST}}}
    restorer = StreamRestorer(lambda: None)
    [(_, values)] = restorer.outgoing("values", {"messages": [], "pseudonyms": saved})
    assert values == {"messages": []}
    checkpoint = {"type": "checkpoint", "payload": {"values": {"pseudonyms": saved, "x": 1}}}
    [(_, debug)] = restorer.outgoing("debug", checkpoint)
    assert debug == {"type": "checkpoint", "payload": {"values": {"x": 1}}}
    custom = {"pseudonyms": "a node's own custom event"}
    assert restorer.outgoing("custom", custom) == (("custom", custom),)
