"""memory/thread_pseudonyms.py: the map saved per tenant and user in a thread's state, the
model's reply restored before it is stored, and stored answers tokenised again for the
provider."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from identity import Principal
from memory.thread_pseudonyms import (
    STATE_KEY,
    pseudonymise_history,
    pseudonymise_values,
    restore_message,
    saved_map,
    saved_update,
)
from privacy import EntityType, PseudonymMap

ALICE = Principal.with_roles("acme", "alice", ["user"])
BOB = Principal.with_roles("acme", "bob", ["user"])
ALICE_ELSEWHERE = Principal.with_roles("globex", "alice", ["user"])


def _map() -> PseudonymMap:
    mapping = PseudonymMap()
    mapping.token_for(EntityType.PERSON, "Maria Jensen")
    mapping.token_for(EntityType.PERSON, "Maria")
    return mapping


def test_the_saved_map_is_per_tenant_and_user_and_round_trips() -> None:
    mapping = _map()
    saved = saved_update({}, ALICE, mapping)
    assert saved == {"acme": {"alice": {"<PERSON_1>": "Maria Jensen", "<PERSON_2>": "Maria"}}}
    state = {STATE_KEY: saved}
    assert saved_update(state, ALICE, mapping) is None  # unchanged: no write
    loaded = saved_map(state, ALICE)
    assert loaded is not None and loaded.tokens == mapping.tokens
    assert loaded.token_for(EntityType.PERSON, "Ole Hansen") == "<PERSON_3>"  # numbering goes on
    assert saved_map(state, BOB) is None and saved_map(state, ALICE_ELSEWHERE) is None
    bob_map = PseudonymMap()
    bob_map.token_for(EntityType.EMAIL, "bob@example.com")
    both = saved_update(state, BOB, bob_map)
    assert both == {
        "acme": {
            "alice": {"<PERSON_1>": "Maria Jensen", "<PERSON_2>": "Maria"},
            "bob": {"<EMAIL_1>": "bob@example.com"},
        }
    }
    assert saved_update({}, ALICE, PseudonymMap()) is None


def test_a_malformed_saved_map_is_ignored() -> None:
    for bad in (
        "text",
        {"acme": "x"},
        {"acme": {"alice": {"PERSON_1": "Maria"}}},  # not a token
        {"acme": {"alice": {"<PERSON_1>": 5}}},
        {"acme": {"alice": {"<PERSON_1>": ""}}},
        {"acme": {"alice": {}}},
    ):
        assert saved_map({STATE_KEY: bad}, ALICE) is None, bad


def test_values_become_tokens_longest_first_and_as_whole_words() -> None:
    mapping = _map()
    assert pseudonymise_values("Maria Jensen and Maria, not Marianne.", mapping) == (
        "<PERSON_1> and <PERSON_2>, not Marianne."
    )
    assert pseudonymise_values("nothing here", PseudonymMap()) == "nothing here"


def test_history_is_tokenised_in_every_message() -> None:
    mapping = _map()
    human = HumanMessage("I am Maria Jensen")
    answer = AIMessage("Hello Maria Jensen", id="a1")
    blocks = AIMessage([{"type": "text", "text": "Bye Maria"}, "Maria"], id="a2")
    untouched = AIMessage("Hello there", id="a3")
    out = pseudonymise_history([human, answer, blocks, untouched], mapping)
    assert out[0].content == "I am <PERSON_1>" and human.content == "I am Maria Jensen"
    assert out[3] is untouched
    assert out[1].content == "Hello <PERSON_1>" and out[1].id == "a1"
    assert out[2].content == [{"type": "text", "text": "Bye <PERSON_2>"}, "<PERSON_2>"]
    assert answer.content == "Hello Maria Jensen"  # the stored message is not changed
    history = [human, answer]
    assert pseudonymise_history(history, None) is history


def test_the_reply_is_restored_in_its_text_and_tool_calls() -> None:
    mapping = _map()
    reply = AIMessage(
        "Writing to <PERSON_1> now; <PERSON_7> is unknown.",
        id="r1",
        tool_calls=[{"name": "mail", "args": {"to": "<PERSON_1>"}, "id": "c1"}],
    )
    restored = restore_message(reply, mapping)
    assert restored.content == "Writing to Maria Jensen now; <PERSON_7> is unknown."
    assert restored.tool_calls[0]["args"] == {"to": "Maria Jensen"} and restored.id == "r1"
    assert reply.tool_calls[0]["args"] == {"to": "<PERSON_1>"}  # the reply is not changed
    assert restore_message(reply, None) is reply
    plain = AIMessage("no tokens")
    assert restore_message(plain, mapping) is plain


def _contact_map() -> PseudonymMap:
    mapping = PseudonymMap()
    mapping.token_for(EntityType.EMAIL, "maria@example.dk")
    mapping.token_for(EntityType.PERSON, 'Søren "Bo" Ærø')
    return mapping


def test_tool_call_arguments_are_restored_recursively_in_every_form() -> None:
    """Nested strings (lists, dicts, keys) in the parsed calls, the provider's raw JSON
    arguments in ``additional_kwargs`` and broken (invalid) calls all get the values."""
    mapping = _contact_map()
    raw_args = json.dumps({"to": ["<EMAIL_1>"], "body": "call <PERSON_1>"})
    reply = AIMessage(
        "",
        id="r2",
        tool_calls=[
            {
                "name": "email_send",
                "args": {
                    "to": ["<EMAIL_1>", "<EMAIL_9>"],
                    "meta": {"cc": [{"who": "<PERSON_1>", "n": 2, "ok": True}], "<EMAIL_1>": 1},
                },
                "id": "c1",
            }
        ],
        invalid_tool_calls=[
            {"name": "notes_create", "args": '{"body": "<PERSON_1>', "id": "c2", "error": "x"}
        ],
        additional_kwargs={
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "x", "arguments": raw_args}}
            ]
        },
    )
    restored = restore_message(reply, mapping)
    assert restored.tool_calls[0]["args"] == {
        "to": ["maria@example.dk", "<EMAIL_9>"],  # an unknown token stays
        "meta": {"cc": [{"who": 'Søren "Bo" Ærø', "n": 2, "ok": True}], "maria@example.dk": 1},
    }
    assert restored.invalid_tool_calls[0]["args"] == '{"body": "Søren "Bo" Ærø'
    raw = restored.additional_kwargs["tool_calls"][0]["function"]["arguments"]
    assert json.loads(raw) == {"to": ["maria@example.dk"], "body": 'call Søren "Bo" Ærø'}
    assert "<EMAIL_1>" in json.dumps(reply.tool_calls)  # the model's reply is not changed


def test_the_provider_sees_tokens_in_tool_calls_and_tool_results() -> None:
    mapping = _contact_map()
    person = 'Søren "Bo" Ærø'
    stored = restore_message(
        AIMessage(
            "Sending.",
            id="a1",
            tool_calls=[{"name": "email_send", "args": {"to": ["<EMAIL_1>"]}, "id": "c1"}],
            additional_kwargs={
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "email_send", "arguments": '{"to":["<EMAIL_1>"]}'},
                    }
                ]
            },
        ),
        mapping,
    )
    # Tool results are JSON text: escaped (quotes, \\u-escapes) and plain forms alike.
    escaped = ToolMessage(json.dumps({"to": "maria@example.dk", "name": person}), tool_call_id="c1")
    plain = ToolMessage(
        json.dumps({"name": person}, ensure_ascii=False), tool_call_id="c1", name="notes_get"
    )
    blocks = ToolMessage([{"type": "text", "text": "sent to maria@example.dk"}], tool_call_id="c1")
    out = pseudonymise_history([stored, escaped, plain, blocks], mapping)
    seen = json.dumps([m.model_dump() for m in out], ensure_ascii=False)
    for value in ("maria@example.dk", "Søren", "S\\u00f8ren", "Ærø"):
        assert value not in seen, value
    assert out[0].tool_calls[0]["args"] == {"to": ["<EMAIL_1>"]}
    raw = out[0].additional_kwargs["tool_calls"][0]["function"]["arguments"]
    assert json.loads(raw) == {"to": ["<EMAIL_1>"]}
    assert json.loads(out[1].content) == {"to": "<EMAIL_1>", "name": "<PERSON_1>"}
    assert json.loads(out[2].content) == {"name": "<PERSON_1>"} and out[2].name == "notes_get"
    assert out[3].content == [{"type": "text", "text": "sent to <EMAIL_1>"}]
    assert out[1].tool_call_id == "c1" and escaped.content != out[1].content  # copies
    assert stored.tool_calls[0]["args"] == {"to": ["maria@example.dk"]}
