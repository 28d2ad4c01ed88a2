"""Personal data the user types (issue 5, minimisation of input): with minimisation on, an
e-mail address in a user's message that no memory put into the run's pseudonym map reaches
the model provider, behind a local OpenAI stub, as ``<EMAIL_1>``; the tool, the streamed
tokens, the stored history and the final answer show the address. Tokens keep their
numbers across the thread's turns; another thread or user never gets the map; the
``privacy_minimise`` setting decides which messages are minimised."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from identity import Principal
from memory.minimisation import MinimisationPolicy, minimise_new_input
from privacy import PseudonymMap
from runtime.memory_services import LazyMemoryServices
from runtime.runs import Runner, RunSummary
from runtime.system import open_system
from tests.memory.memory_helpers import WordHashEmbedder
from tests.memory.pseudonym_helpers import (
    ALICE,
    ANY_TOKEN,
    ASSISTANT,
    FIRST,
    SECOND,
    assert_the_map_stays_in_its_thread,
    note_bodies,
    run_events,
    run_turn,
    streamed_text,
    stub_settings,
    the_next_turn_keeps_the_numbers,
    thread_state,
)

SENT_FIRST = "Please make a note: I must write to <EMAIL_1> today."
"""The first turn's message as the model provider gets it."""


async def _run(
    runner: Runner, principal: Principal, text: str, thread_id: str | None = None
) -> RunSummary:
    return await run_turn(runner, principal, ASSISTANT, text=text, thread_id=thread_id)


async def test_typed_personal_data_reaches_the_provider_as_tokens_only(
    data_dir: Path, openai_stub: Any
) -> None:
    settings = stub_settings(data_dir, openai_stub, ["special", "personal"])
    async with open_system(settings) as system:
        system.memory = LazyMemoryServices(system, embedder=WordHashEmbedder())
        runner = Runner(system)

        openai_stub.reply(
            "Saving it.",
            tool_calls=[
                {"name": "notes_create", "args": {"title": "Contact", "body": "Write <EMAIL_1>"}}
            ],
        )
        openai_stub.reply("Noted: write to <EMAIL_1>.")
        done = await _run(runner, ALICE, f"Please make a note: I must write to {FIRST} today.")
        assert done.stop_reason == "completed", done
        assert done.final_message == f"Noted: write to {FIRST}."

        first, second = openai_stub.requests[-2:]
        user = [m for m in first["messages"] if m["role"] == "user"]
        assert user[-1]["content"] == SENT_FIRST
        assert FIRST not in json.dumps(first) and FIRST not in json.dumps(second)
        # The tool acted on the address.
        assert await note_bodies(system, "alice") == [f"Write {FIRST}"]

        events = await run_events(system, done.run_id)
        assert streamed_text(events) == f"Saving it.Noted: write to {FIRST}."
        assert not ANY_TOKEN.search(json.dumps(events)), "a token reached the user's stream"

        # The next turn: the first address keeps its token, a new one gets the next number.
        await the_next_turn_keeps_the_numbers(
            runner, openai_stub, ASSISTANT, done.thread_id, SENT_FIRST
        )

        state = await thread_state(system, done.thread_id)
        humans = [m.content for m in state["messages"] if m.type == "human"]
        assert humans == [
            f"Please make a note: I must write to {FIRST} today.",
            f"Also write to {SECOND}, and to the first one.",
        ]
        assert state["pseudonyms"] == {"acme": {"alice": {"<EMAIL_1>": FIRST, "<EMAIL_2>": SECOND}}}
        stored = json.dumps([m.model_dump() for m in state["messages"]])
        assert not ANY_TOKEN.search(stored)

        # Another thread of the same user, and another user: the map is not theirs.
        await assert_the_map_stays_in_its_thread(runner, openai_stub, ASSISTANT)


async def test_a_message_below_the_configured_levels_is_sent_as_typed(
    data_dir: Path, openai_stub: Any
) -> None:
    settings = stub_settings(data_dir, openai_stub, None)  # the default: special only
    async with open_system(settings) as system:
        system.memory = LazyMemoryServices(system, embedder=WordHashEmbedder())
        runner = Runner(system)

        openai_stub.reply("Sure.")
        plain = await _run(runner, ALICE, f"Please write to {FIRST} today.")
        assert plain.final_message == "Sure."
        sent = [m for m in openai_stub.requests[-1]["messages"] if m["role"] == "user"]
        assert sent[-1]["content"] == f"Please write to {FIRST} today."
        assert "pseudonyms" not in await thread_state(system, plain.thread_id)

        # Special-category text: every finding in it becomes a token, the address too.
        openai_stub.reply("I will send <EMAIL_1> the <HEALTH_2> news.")
        special = await _run(
            runner, ALICE, f"My doctor says I have diabetes; send the results to {FIRST}"
        )
        sent = [m for m in openai_stub.requests[-1]["messages"] if m["role"] == "user"]
        assert (
            sent[-1]["content"]
            == "My <HEALTH_1> says I have <HEALTH_2>; send the results to <EMAIL_1>"
        )
        assert special.final_message == f"I will send {FIRST} the diabetes news."


@pytest.mark.parametrize("levels", [[], ["special"]])
async def test_financial_identifiers_follow_the_setting(
    data_dir: Path, openai_stub: Any, levels: list[str]
) -> None:
    iban = "DK5000400440116243"
    settings = stub_settings(data_dir, openai_stub, [*levels, "financial"] if levels else [])
    async with open_system(settings) as system:
        system.memory = LazyMemoryServices(system, embedder=WordHashEmbedder())
        runner = Runner(system)
        openai_stub.reply("Paying <IBAN_1>.")
        done = await _run(runner, ALICE, f"Pay the invoice to {iban} please.")
        sent = [m for m in openai_stub.requests[-1]["messages"] if m["role"] == "user"]
        if levels:
            assert sent[-1]["content"] == "Pay the invoice to <IBAN_1> please."
            assert done.final_message == f"Paying {iban}."
        else:  # minimisation off: sent as typed, and a token the model invents stays one
            assert sent[-1]["content"] == f"Pay the invoice to {iban} please."
            assert done.final_message == "Paying <IBAN_1>."


def test_only_unanswered_user_messages_are_scanned_and_the_stored_ones_kept() -> None:
    personal = MinimisationPolicy.from_names(["personal"])
    answered = HumanMessage(f"Write to {SECOND}.")
    blocks = HumanMessage(
        content=[{"type": "text", "text": f"Mail {FIRST}"}, {"type": "image_url", "image_url": {}}]
    )
    history = [answered, AIMessage("Done."), blocks, {"role": "user", "content": FIRST}]
    mapping = PseudonymMap()
    out = minimise_new_input(history, personal, mapping)
    assert mapping.tokens == {"<EMAIL_1>": FIRST}  # the answered message was new once
    assert out[:2] == history[:2]
    assert out[2].content == [
        {"type": "text", "text": "Mail <EMAIL_1>"},
        {"type": "image_url", "image_url": {}},
    ]
    assert out[3] == {"role": "user", "content": "<EMAIL_1>"}
    assert blocks.content[0]["text"] == f"Mail {FIRST}"  # the stored message is unchanged

    off = PseudonymMap()
    assert minimise_new_input(history, MinimisationPolicy.from_names([]), off) == history
    assert off.tokens == {}
