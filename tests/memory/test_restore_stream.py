"""memory/restore_stream.py: a run's pseudonyms restored in its events, including a token
split across streamed chunks, with nothing held back that cannot start a token."""

from __future__ import annotations

from typing import Any

import pytest

from memory.restore_stream import (
    StreamRestorer,
    restore_values,
    split_held,
    token_prefixes,
)
from privacy import EntityType, PseudonymMap


def _map() -> PseudonymMap:
    mapping = PseudonymMap()
    mapping.token_for(EntityType.PERSON, "Maria Jensen")
    mapping.token_for(EntityType.EMAIL, "maria@example.com")
    return mapping


PREFIXES = token_prefixes(_map().tokens)


def test_token_prefixes_are_the_proper_prefixes_of_every_token() -> None:
    assert {"<", "<P", "<PERSON_1", "<E", "<EMAIL_1"} <= PREFIXES
    assert "<PERSON_1>" not in PREFIXES and "" not in PREFIXES and "<X" not in PREFIXES


@pytest.mark.parametrize(
    ("text", "ready", "held"),
    [
        ("Hello <PER", "Hello ", "<PER"),
        ("Hello <", "Hello ", "<"),
        ("Hello <PERSON_1", "Hello ", "<PERSON_1"),
        ("a <PERSON_1> b", "a <PERSON_1> b", ""),  # complete: restored, not held
        ("x < y", "x < y", ""),  # a "<" that cannot start a token
        ("<b>bold", "<b>bold", ""),
        ("1 <2 and <PERSON_2", "1 <2 and <PERSON_2", ""),  # an unknown token number
        ("<EMAIL_", "", "<EMAIL_"),
        ("no tokens here", "no tokens here", ""),
        ("", "", ""),
    ],
)
def test_split_held_holds_only_the_start_of_a_known_token(text: str, ready: str, held: str) -> None:
    assert split_held(text, PREFIXES) == (ready, held)


def _chunk(text: Any, message_id: str = "run-1", **extra: Any) -> list[Any]:
    message = {
        "type": "AIMessageChunk",
        "id": message_id,
        "content": text,
        "tool_call_chunks": [],
        "response_metadata": {},
        **extra,
    }
    return [message, {"langgraph_node": "model"}]


def _texts(emitted: Any) -> list[str]:
    return [data[0]["content"] for _, data in emitted]


def test_a_token_split_across_chunks_is_restored_when_it_completes() -> None:
    restorer = StreamRestorer(_map)
    assert _texts(restorer.outgoing("messages", _chunk("Your name is <PER"))) == ["Your name is "]
    assert _texts(restorer.outgoing("messages", _chunk("SO"))) == [""]
    assert _texts(restorer.outgoing("messages", _chunk("N_1>, and mail <EMAIL_1>."))) == [
        "Maria Jensen, and mail maria@example.com."
    ]
    assert restorer.flush() == []


def test_a_held_tail_goes_out_when_the_message_ends() -> None:
    restorer = StreamRestorer(_map)
    assert _texts(restorer.outgoing("messages", _chunk("Ends with <PERS"))) == ["Ends with "]
    # The node's update ends the message: its tail is sent first, as a chunk of it.
    emitted = restorer.outgoing(
        "updates", {"model": {"messages": [{"type": "ai", "content": "x <PERSON_1>"}]}}
    )
    assert [name for name, _ in emitted] == ["messages", "updates"]
    tail, metadata = emitted[0][1]
    assert tail["content"] == "<PERS" and tail["id"] == "run-1" and tail["tool_call_chunks"] == []
    assert metadata == {"langgraph_node": "model"}
    assert emitted[1][1] == {"model": {"messages": [{"type": "ai", "content": "x Maria Jensen"}]}}


def test_the_last_chunk_of_a_message_releases_everything() -> None:
    restorer = StreamRestorer(_map)
    restorer.outgoing("messages", _chunk("a <PERSON_"))
    last = _chunk("1", chunk_position="last")
    assert _texts(restorer.outgoing("messages", last)) == ["<PERSON_1"]  # never completed
    restorer.outgoing("messages", _chunk("b <", message_id="run-2"))
    finished = _chunk("", message_id="run-2", response_metadata={"finish_reason": "stop"})
    assert _texts(restorer.outgoing("messages", finished)) == ["<"]


def test_interleaved_messages_keep_their_own_tails() -> None:
    restorer = StreamRestorer(_map)
    assert _texts(restorer.outgoing("messages", _chunk("A <PER", "m1"))) == ["A "]
    assert _texts(restorer.outgoing("messages", _chunk("B <EMA", "m2"))) == ["B "]
    assert _texts(restorer.outgoing("messages", _chunk("IL_1>", "m2"))) == ["maria@example.com"]
    assert _texts(restorer.outgoing("messages", _chunk("SON_1>", "m1"))) == ["Maria Jensen"]


def test_content_blocks_are_restored_and_held_per_block() -> None:
    restorer = StreamRestorer(_map)
    first = restorer.outgoing("messages", _chunk([{"type": "text", "text": "Hi <P", "index": 0}]))
    assert _texts(first) == [[{"type": "text", "text": "Hi ", "index": 0}]]
    second = restorer.outgoing(
        "messages", _chunk([{"type": "text", "text": "ERSON_1>", "index": 0}])
    )
    assert _texts(second) == [[{"type": "text", "text": "Maria Jensen", "index": 0}]]
    restorer.outgoing("messages", _chunk([{"type": "text", "text": "<", "index": 1}]))
    (flushed,) = restorer.flush()
    assert flushed[1][0]["content"] == [{"type": "text", "text": "<", "index": 1}]


def test_no_map_or_an_empty_map_passes_events_through_untouched() -> None:
    data = _chunk("<PER")
    for lookup in (lambda: None, PseudonymMap):
        restorer = StreamRestorer(lookup)
        (only,) = restorer.outgoing("messages", data)
        assert only == ("messages", data) and only[1] is data


def test_whole_messages_and_values_restore_ai_text_only() -> None:
    mapping = _map()
    values = {
        "messages": [
            {"type": "human", "content": "is <PERSON_1> me?"},
            {
                "type": "ai",
                "content": [{"type": "text", "text": "Yes, <PERSON_1>."}],
                "tool_calls": [{"name": "mail", "args": {"to": "<EMAIL_1>"}}],
            },
            {"type": "tool", "content": "sent to <EMAIL_1>"},
        ],
        "final_message": "Yes, <PERSON_1>.",
    }
    restored = restore_values(values, mapping)
    assert restored["messages"][0]["content"] == "is <PERSON_1> me?"
    assert restored["messages"][1]["content"] == [{"type": "text", "text": "Yes, Maria Jensen."}]
    assert restored["messages"][1]["tool_calls"] == [{"name": "mail", "args": {"to": "<EMAIL_1>"}}]
    assert restored["messages"][2]["content"] == "sent to <EMAIL_1>"
    assert restored["final_message"] == "Yes, Maria Jensen."
    assert values["final_message"] == "Yes, <PERSON_1>."  # the input is not changed

    restorer = StreamRestorer(lambda: mapping)
    whole = [{"type": "ai", "id": "m", "content": "Hello <PERSON_1> <PERSON_9>"}, {}]
    assert _texts(restorer.outgoing("messages|sub:1", whole)) == ["Hello Maria Jensen <PERSON_9>"]


def test_a_map_that_grows_during_the_run_is_used_at_once() -> None:
    mapping = PseudonymMap()
    restorer = StreamRestorer(lambda: mapping)
    assert _texts(restorer.outgoing("messages", _chunk("<PER"))) == ["<PER"]  # nothing known
    mapping.token_for(EntityType.PERSON, "Maria Jensen")
    assert _texts(restorer.outgoing("messages", _chunk("x <PER"))) == ["x "]
    assert _texts(restorer.outgoing("messages", _chunk("SON_1>"))) == ["Maria Jensen"]
