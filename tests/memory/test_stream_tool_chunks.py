"""Pseudonyms in streamed tool calls (memory/restore_stream.py): the pieces of a tool call's
arguments in ``messages`` events (``tool_call_chunks``) show the user's values, a token
split across pieces is held only while it could still be one (per tool-call index), and
the arguments a client accumulates are valid JSON with the values. End to end: through the
real OpenAI client against the local stub, no token reaches the run's events."""

from __future__ import annotations

import json
import re
from functools import reduce
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessageChunk

from identity import Principal
from memory.restore_stream import StreamRestorer, restore_json_piece
from privacy import EntityType, PseudonymMap
from runtime.memory_services import LazyMemoryServices
from runtime.runs import Runner, RunRequest, RunSummary
from runtime.system import open_system
from tests.memory.memory_helpers import WordHashEmbedder
from tests.memory.pseudonym_helpers import ASSISTANT, STREAM, run_events, stub_settings

ADDRESS = "maria@example.com"
ANY_TOKEN = re.compile(r"<[A-Z_]+_\d+>")


def _map() -> PseudonymMap:
    mapping = PseudonymMap()
    mapping.token_for(EntityType.EMAIL, ADDRESS)
    mapping.token_for(EntityType.PERSON, 'Maria "Mia" Jensen\nAarhus')
    return mapping


def _chunk(
    pieces: list[tuple[int | None, str]], message_id: str = "run-1", **extra: Any
) -> list[Any]:
    """A ``messages`` event of a chunk carrying argument ``pieces`` (index, text)."""
    calls = [
        {"name": None, "args": text, "id": None, "index": index, "type": "tool_call_chunk"}
        for index, text in pieces
    ]
    derived = AIMessageChunk(content="", tool_call_chunks=calls)  # as LangChain sends it
    message = {
        "type": "AIMessageChunk",
        "id": message_id,
        "content": "",
        "additional_kwargs": {},
        "response_metadata": {},
        "tool_call_chunks": calls,
        "tool_calls": [dict(call) for call in derived.tool_calls],
        "invalid_tool_calls": [dict(call) for call in derived.invalid_tool_calls],
        **extra,
    }
    return [message, {"langgraph_node": "model"}]


def _head(index: int, name: str, call_id: str) -> list[Any]:
    data = _chunk([(index, "")])
    data[0]["tool_call_chunks"][0].update(name=name, id=call_id)
    return data


def _pieces(emitted: Any) -> list[tuple[Any, str]]:
    return [
        (piece["index"], piece["args"])
        for _, data in emitted
        for piece in data[0]["tool_call_chunks"]
    ]


def _merged(events: list[Any]) -> AIMessageChunk:
    """The message a client accumulates from the chunks (LangChain's own merge)."""
    chunks = [
        AIMessageChunk(
            content=data[0]["content"], tool_call_chunks=data[0]["tool_call_chunks"], id="m"
        )
        for _, data in events
    ]
    return reduce(lambda left, right: left + right, chunks)


def test_a_token_split_across_argument_pieces_is_restored_when_it_completes() -> None:
    restorer = StreamRestorer(_map)
    events: list[Any] = []
    events += restorer.outgoing("messages", _head(0, "email_send", "call_1"))
    for text in ['{"to": ["<EM', "AIL", '_1>"], "body": "Hi <', 'EMAIL_1>!"}']:
        events += restorer.outgoing("messages", _chunk([(0, text)]))
    events += restorer.outgoing("messages", _chunk([], chunk_position="last"))
    assert _pieces(events) == [
        (0, ""),
        (0, '{"to": ["'),
        (0, ""),
        (0, f'{ADDRESS}"], "body": "Hi '),
        (0, f'{ADDRESS}!"}}'),
    ]
    assert not ANY_TOKEN.search(json.dumps(events))
    merged = _merged(events)
    assert merged.tool_calls == [
        {
            "name": "email_send",
            "args": {"to": [ADDRESS], "body": f"Hi {ADDRESS}!"},
            "id": "call_1",
            "type": "tool_call",
        }
    ]
    # Each chunk's own parsed form agrees with its piece (as LangChain derives it).
    restored = events[3][1][0]
    assert restored["invalid_tool_calls"][0]["args"] == f'{ADDRESS}"], "body": "Hi '
    assert restorer.flush() == []


def test_interleaved_calls_keep_their_own_tails() -> None:
    restorer = StreamRestorer(_map)
    events: list[Any] = []
    events += restorer.outgoing("messages", _chunk([(0, '{"a": "<EMA'), (1, '{"b": "<')]))
    events += restorer.outgoing("messages", _chunk([(1, 'EMAIL_1>"}'), (0, 'IL_1>"}')]))
    assert _pieces(events) == [
        (0, '{"a": "'),
        (1, '{"b": "'),
        (1, f'{ADDRESS}"}}'),
        (0, f'{ADDRESS}"}}'),
    ]


def test_a_held_tail_goes_out_as_a_piece_of_its_call_when_the_message_ends() -> None:
    restorer = StreamRestorer(_map)
    events: list[Any] = []
    events += restorer.outgoing("messages", _head(2, "notes_create", "call_9"))
    events += restorer.outgoing("messages", _chunk([(2, '{"body": "a <EMA')]))
    assert _pieces(events)[-1] == (2, '{"body": "a ')
    last = restorer.outgoing(
        "messages", _chunk([], response_metadata={"finish_reason": "tool_calls"})
    )
    assert len(last) == 2 and _pieces(last) == [(2, "<EMA")]  # what the model wrote
    events += last
    assert _merged(events).tool_call_chunks[0]["args"] == '{"body": "a <EMA'
    assert restorer.flush() == []

    # Held until the next event that ends the message (here the node's update).
    restorer.outgoing("messages", _chunk([(0, '{"x": "<')], message_id="run-2"))
    out = restorer.outgoing("updates", {"model": {}})
    assert [name for name, _ in out] == ["messages", "updates"]
    assert _pieces(out[:1]) == [(0, "<")]
    assert out[0][1][0]["id"] == "run-2"


def test_values_are_escaped_for_the_json_they_land_in() -> None:
    restorer = StreamRestorer(_map)
    events = [
        *restorer.outgoing("messages", _head(0, "notes_create", "call_1")),
        *restorer.outgoing("messages", _chunk([(0, '{"body": "Dear <PERSON_1>"}')])),
    ]
    merged = _merged(events)
    assert merged.tool_calls[0]["args"] == {"body": 'Dear Maria "Mia" Jensen\nAarhus'}
    assert json.loads(merged.tool_call_chunks[0]["args"]) == merged.tool_calls[0]["args"]
    assert restore_json_piece("<PERSON_2> <EMAIL_1>", _map()) == f"<PERSON_2> {ADDRESS}"


def test_a_whole_call_and_the_raw_form_are_restored_and_unknown_tokens_stay() -> None:
    restorer = StreamRestorer(_map)
    data = _chunk([(None, '{"to": "<EMAIL_1>", "cc": "<EMAIL_7>"}')])
    raw = {"index": None, "function": {"name": "m", "arguments": '{"to": "<EMAIL_1>"}'}}
    data[0]["additional_kwargs"] = {"tool_calls": [raw]}
    (_, (out, _meta)), *rest = restorer.outgoing("messages", data)
    assert rest == []
    expected = f'{{"to": "{ADDRESS}", "cc": "<EMAIL_7>"}}'
    assert out["tool_call_chunks"][0]["args"] == expected
    assert out["tool_calls"][0]["args"] == {"to": ADDRESS, "cc": "<EMAIL_7>"}
    assert out["additional_kwargs"]["tool_calls"][0]["function"]["arguments"] == expected

    whole = {
        "type": "ai",
        "id": "run-3",
        "content": "Sending to <EMAIL_1>",
        "tool_calls": [
            {"name": "m", "args": {"to": ["<EMAIL_1>"]}, "id": "c", "type": "tool_call"}
        ],
    }
    ((_, (sent, _meta)),) = restorer.outgoing("messages", [whole, {}])
    assert sent["content"] == f"Sending to {ADDRESS}"
    assert sent["tool_calls"][0]["args"] == {"to": [ADDRESS]}


def test_without_a_map_tool_pieces_pass_untouched() -> None:
    data = _chunk([(0, '{"to": "<EM')])
    assert StreamRestorer(lambda: None).outgoing("messages", data) == (("messages", data),)
    assert StreamRestorer(PseudonymMap).outgoing("messages", data) == (("messages", data),)


ALICE = Principal.with_roles("acme", "alice", ["user"])
BOB = Principal.with_roles("acme", "bob", ["user"])
RECALLED = "maria.jensen@example.dk"
CALL = {"to": ["<EMAIL_1>"], "subject": "Hello", "body": "Hi <EMAIL_1>!"}


async def _send_hello(runner: Runner, principal: Principal, openai_stub: Any) -> RunSummary:
    """A run whose model proposes ``email_send`` with ``CALL`` (it waits for approval)."""
    openai_stub.reply("", tool_calls=[{"name": "email_send", "args": CALL}])
    return await runner.run(
        RunRequest(
            principal=principal,
            assistant_id=ASSISTANT,
            input_text="Send me a hello email.",
            stream_mode=STREAM,
        )
    )


async def test_streamed_tool_calls_of_a_run_show_the_value(
    data_dir: Path, openai_stub: Any
) -> None:
    async with open_system(stub_settings(data_dir, openai_stub, ["personal"])) as system:
        system.memory = LazyMemoryServices(system, embedder=WordHashEmbedder())
        services = await system.memory.get()
        await services.memories.remember(ALICE, f"My email is {RECALLED}")
        runner = Runner(system)

        paused = await _send_hello(runner, ALICE, openai_stub)
        assert paused.stop_reason == "waiting_for_human", paused
        assert RECALLED not in json.dumps(openai_stub.requests[-1])  # the provider's view
        events = await run_events(system, paused.run_id)
        streamed = [data[0] for name, data in events if name == "messages"]
        pieces = [piece for chunk in streamed for piece in chunk.get("tool_call_chunks") or []]
        assert pieces, "the run streamed no tool-call chunk"
        args = json.loads("".join(piece["args"] for piece in pieces))
        assert args == {"to": [RECALLED], "subject": "Hello", "body": f"Hi {RECALLED}!"}
        calls = [call for chunk in streamed for call in chunk.get("tool_calls") or []]
        assert [call["args"] for call in calls] == [args]
        assert not ANY_TOKEN.search(json.dumps(events)), "a token reached the user's stream"

        # Bob's model writes the same token: no map of his knows it, it stays a token.
        other = await _send_hello(runner, BOB, openai_stub)
        bob_events = json.dumps(await run_events(system, other.run_id))
        assert RECALLED not in bob_events and "<EMAIL_1>" in bob_events
