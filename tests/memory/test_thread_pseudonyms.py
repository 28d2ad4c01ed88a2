"""memory/thread_pseudonyms.py: the map saved per tenant and user in a thread's state, the
model's reply restored before it is stored, and stored answers tokenised again for the
provider."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage

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


def test_history_is_tokenised_in_ai_messages_only() -> None:
    mapping = _map()
    human = HumanMessage("I am Maria Jensen")
    answer = AIMessage("Hello Maria Jensen", id="a1")
    blocks = AIMessage([{"type": "text", "text": "Bye Maria"}, "Maria"], id="a2")
    untouched = AIMessage("Hello there", id="a3")
    out = pseudonymise_history([human, answer, blocks, untouched], mapping)
    assert out[0] is human and out[3] is untouched
    assert out[1].content == "Hello <PERSON_1>" and out[1].id == "a1"
    assert out[2].content == [{"type": "text", "text": "Bye <PERSON_2>"}, "<PERSON_2>"]
    assert answer.content == "Hello Maria Jensen"  # the stored message is not changed
    history = [human, answer]
    assert pseudonymise_history(history, None) is history


def test_the_reply_is_restored_but_its_tool_calls_keep_their_tokens() -> None:
    mapping = _map()
    reply = AIMessage(
        "Writing to <PERSON_1> now; <PERSON_7> is unknown.",
        id="r1",
        tool_calls=[{"name": "mail", "args": {"to": "<PERSON_1>"}, "id": "c1"}],
    )
    restored = restore_message(reply, mapping)
    assert restored.content == "Writing to Maria Jensen now; <PERSON_7> is unknown."
    assert restored.tool_calls[0]["args"] == {"to": "<PERSON_1>"} and restored.id == "r1"
    assert restore_message(reply, None) is reply
    plain = AIMessage("no tokens")
    assert restore_message(plain, mapping) is plain
