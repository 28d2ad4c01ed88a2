"""providers/scripted.py (and the spec parser it is reached through)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from providers import ModelSpecError, ProviderSettings, ScriptError, build_chat_model, parse_spec
from providers.scripted import ScriptedChatModel, demo_turn
from providers.specs import ModelSpec
from tests.helpers import call, write_script

TURNS: list[dict[str, Any]] = [
    {"content": "saving", "tool_calls": [call("notes_create", title="a", body="b")]},
    {"content": "two at once", "tool_calls": [call("notes_search", query="a"), call("x")]},
    {"content": "done"},
]


def _model(spec: str) -> ScriptedChatModel:
    model = build_chat_model(spec, ProviderSettings())
    assert isinstance(model, ScriptedChatModel)
    return model


def _after(turn: AIMessage, *history: BaseMessage) -> list[BaseMessage]:
    """The history plus ``turn`` and a tool result for each of its calls."""
    results = [
        ToolMessage(content="{}", tool_call_id=tool_call["id"], name=tool_call["name"])
        for tool_call in turn.tool_calls
    ]
    return [*history, turn, *results]


def test_json_script_plays_its_turns_in_order(tmp_path: Path) -> None:
    model = _model(write_script(tmp_path / "script.json", TURNS))
    messages: list[BaseMessage] = [HumanMessage("go")]

    first = model.invoke(messages)
    messages = _after(first, *messages)
    second = model.invoke(messages)
    messages = _after(second, *messages)
    third = model.invoke(messages)

    assert [first.content, second.content, third.content] == ["saving", "two at once", "done"]
    assert [c["name"] for c in first.tool_calls] == ["notes_create"]
    assert first.tool_calls[0]["args"] == {"title": "a", "body": "b"}
    assert [c["name"] for c in second.tool_calls] == ["notes_search", "x"]
    assert third.tool_calls == []
    ids = [c["id"] for c in [*first.tool_calls, *second.tool_calls]]
    assert len(set(ids)) == 3


def test_tool_call_ids_depend_only_on_the_messages(tmp_path: Path) -> None:
    spec = write_script(tmp_path / "script.json", TURNS)
    history: list[BaseMessage] = [HumanMessage("go")]
    first = _model(spec).invoke(history)
    history = _after(first, *history)

    # Two models built separately (as after a restart) see the same messages.
    replays = [_model(spec).invoke(history) for _ in range(2)]

    assert replays[0].tool_calls == replays[1].tool_calls
    assert [c["id"] for c in replays[0].tool_calls] == [c["id"] for c in replays[1].tool_calls]
    assert _model(spec).invoke([HumanMessage("go")]).tool_calls == first.tool_calls
    assert {c["id"] for c in first.tool_calls}.isdisjoint(c["id"] for c in replays[0].tool_calls)


def test_a_scripted_id_is_kept(tmp_path: Path) -> None:
    turns = [{"tool_calls": [{"name": "notes_search", "args": {"query": "a"}, "id": "mine"}]}]
    model = _model(write_script(tmp_path / "script.json", turns))

    assert model.invoke([HumanMessage("go")]).tool_calls[0]["id"] == "mine"


def test_exhausted_script_names_the_turn_count(tmp_path: Path) -> None:
    model = _model(write_script(tmp_path / "script.json", [{"content": "only"}]))

    with pytest.raises(ScriptError, match="has 1 turns and turn 2 was requested"):
        model.invoke([HumanMessage("go"), AIMessage("only"), HumanMessage("again")])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "is not valid JSON"),
        ('{"content": "a dict, not a list"}', "must be a JSON list of turns"),
        ('[{"tool_calls": [{"args": {}}]}]', "malformed turn"),
        ('[{"content": 3}]', "malformed turn"),
        ('[{"content": "x", "tool_calls": [], "extra": 1}]', "(?s)malformed turn.*extra"),
        ('[{"tool_calls": [{"name": "x", "args": {}, "kind": "y"}]}]', "(?s)malformed turn.*kind"),
    ],
)
def test_malformed_script_raises_model_spec_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "script.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(ModelSpecError, match=match) as raised:
        build_chat_model(f"scripted:{path}", ProviderSettings())
    assert str(path) in str(raised.value)


def test_missing_script_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"

    with pytest.raises(ModelSpecError, match="does not exist"):
        build_chat_model(f"scripted:{path}", ProviderSettings())


def echo_turn(messages: list[BaseMessage]) -> dict[str, Any]:
    """A turn function importable as ``tests.providers.test_scripted:echo_turn``."""
    return {
        "content": f"seen {len(messages)}",
        "tool_calls": [call("notes_search", query=str(messages[-1].content))],
    }


def test_module_function_spec() -> None:
    model = _model("scripted:tests.providers.test_scripted:echo_turn")

    reply = model.invoke([HumanMessage("launch")])

    assert reply.content == "seen 1"
    assert reply.tool_calls[0]["name"] == "notes_search"
    assert reply.tool_calls[0]["args"] == {"query": "launch"}
    again = _model(model.spec).invoke([HumanMessage("launch")])
    assert again.tool_calls == reply.tool_calls


FILE_FUNCTION = """
def turn(messages):
    return {"content": "from a file", "tool_calls": [{"name": "t", "args": {"n": len(messages)}}]}


def broken(messages):
    raise LookupError("no such turn here")


def bad_shape(messages):
    return {"content": "x", "calls": []}
"""


@pytest.fixture
def turn_file(tmp_path: Path) -> Path:
    path = tmp_path / "turns.py"
    path.write_text(FILE_FUNCTION, encoding="utf-8")
    return path


def test_file_function_spec(turn_file: Path) -> None:
    assert turn_file.is_absolute()
    model = _model(f"scripted:{turn_file}:turn")

    reply = model.invoke([HumanMessage("a"), AIMessage("b"), HumanMessage("c")])

    assert reply.content == "from a file"
    assert reply.tool_calls[0]["args"] == {"n": 3}


def test_function_that_raises_gives_script_error(turn_file: Path) -> None:
    model = _model(f"scripted:{turn_file}:broken")

    with pytest.raises(ScriptError, match="no such turn here"):
        model.invoke([HumanMessage("go")])


def test_function_returning_a_bad_turn_gives_script_error(turn_file: Path) -> None:
    model = _model(f"scripted:{turn_file}:bad_shape")

    with pytest.raises(ScriptError, match="turn 0 is malformed"):
        model.invoke([HumanMessage("go")])


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ("no_such_module_xyz:turn", "cannot import 'no_such_module_xyz'"),
        ("tests.providers.test_scripted:no_such_function", "has no function 'no_such_function'"),
        ("tests.providers.test_scripted:FILE_FUNCTION", "has no function 'FILE_FUNCTION'"),
        ("/nonexistent/dir/turns.py:turn", "does not exist"),
        ("just_a_name", "is not module:function"),
    ],
)
def test_unloadable_function_raises_model_spec_error(target: str, match: str) -> None:
    with pytest.raises(ModelSpecError, match=match):
        build_chat_model(f"scripted:{target}", ProviderSettings())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("openai:gpt-4o-mini", ModelSpec("openai", "gpt-4o-mini")),
        ("scripted:/srv/script.json", ModelSpec("scripted", "/srv/script.json")),
        ("scripted:pkg.mod:turn", ModelSpec("scripted", "pkg.mod:turn")),
        (
            "openai-compatible:llama3@http://127.0.0.1:11434/v1",
            ModelSpec("openai-compatible", "llama3", "http://127.0.0.1:11434/v1"),
        ),
    ],
)
def test_parse_spec(spec: str, expected: ModelSpec) -> None:
    assert parse_spec(spec) == expected
    assert str(expected) == spec


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("", "is not understood"),
        ("gpt-4o", "is not understood"),
        ("anthropic:claude", "is not understood"),
        ("openai:", "is not understood"),
        ("scripted:", "is not understood"),
        ("openai-compatible:llama3", "needs MODEL@BASE_URL"),
        ("openai-compatible:@http://127.0.0.1/v1", "needs MODEL@BASE_URL"),
        ("openai-compatible:llama3@127.0.0.1:11434", "needs MODEL@BASE_URL"),
    ],
)
def test_parse_spec_errors(spec: str, match: str) -> None:
    with pytest.raises(ModelSpecError, match=match):
        parse_spec(spec)


# --- the offline demo model ---------------------------------------------------------------


def _demo_calls(*messages: BaseMessage) -> list[tuple[str, dict[str, Any]]]:
    turn = demo_turn(list(messages))
    return [(c["name"], c["args"]) for c in turn.get("tool_calls", [])]


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        (
            "remember that the launch is on Friday",
            [
                (
                    "notes_create",
                    {"title": "the launch is on Friday", "body": "the launch is on Friday"},
                )
            ],
        ),
        ("find notes about launch", [("notes_search", {"query": "launch", "limit": 5})]),
        ("delete note 3", [("notes_delete", {"note_id": 3})]),
        ("delete the note about launch", [("notes_search", {"query": "launch"})]),
        ("hello there", []),
    ],
)
def test_demo_model_requests(request_text: str, expected: list[Any]) -> None:
    assert _demo_calls(HumanMessage(request_text)) == expected


def test_demo_model_deletes_what_it_found() -> None:
    request = HumanMessage("delete the note about launch")
    search = AIMessage("", tool_calls=[{"name": "notes_search", "args": {}, "id": "c0"}])
    found = ToolMessage(
        content=json.dumps({"notes": [{"id": 7, "title": "launch"}]}),
        tool_call_id="c0",
        name="notes_search",
    )

    assert _demo_calls(request, search, found) == [("notes_delete", {"note_id": 7})]

    delete = AIMessage("", tool_calls=[{"name": "notes_delete", "args": {}, "id": "c1"}])
    deleted = ToolMessage(
        content=json.dumps({"id": 7, "deleted": True, "title": "launch"}),
        tool_call_id="c1",
        name="notes_delete",
    )
    final = demo_turn([request, search, found, delete, deleted])
    assert final == {"content": "Deleted note 7."}


def test_demo_model_is_reachable_as_the_default_spec() -> None:
    model = _model("scripted:providers.scripted:demo_turn")

    reply = model.invoke([HumanMessage("remember that the launch is on Friday")])

    assert [c["name"] for c in reply.tool_calls] == ["notes_create"]


def _step_prompt(request: str, goal: str) -> HumanMessage:
    """The planner's step prompt (graphs/planner.py), with its apostrophes and plan text."""
    return HumanMessage(
        f"Request:\n{request}\n\nPlan:\n1. [pending] {goal} (tools: notes_search; done when: "
        "The step's tool results are reported.) ← this step\n\n"
        f"Do step 1: {goal}\nExpected tools: notes_search\n"
        "Done when: The step's tool results are reported."
    )


@pytest.mark.parametrize(
    ("goal", "expected"),
    [
        ("find notes about offsite", [("notes_search", {"query": "offsite", "limit": 5})]),
        ("find our notes about the offsite", [("notes_search", {"query": "offsite", "limit": 5})]),
        ("delete the note about offsite", [("notes_search", {"query": "offsite"})]),
        (
            "remember that the offsite is in March",
            [
                (
                    "notes_create",
                    {"title": "the offsite is in March", "body": "the offsite is in March"},
                )
            ],
        ),
    ],
)
def test_demo_model_acts_on_a_planner_steps_goal(goal: str, expected: list[Any]) -> None:
    assert _demo_calls(_step_prompt(goal, goal)) == expected


def test_demo_model_in_a_step_deletes_what_it_found() -> None:
    prompt = _step_prompt("forget the offsite note", "delete the note about offsite")
    search = AIMessage("", tool_calls=[{"name": "notes_search", "args": {}, "id": "c0"}])
    found = ToolMessage(
        content=json.dumps({"notes": [{"id": 4, "title": "the offsite is in March"}]}),
        tool_call_id="c0",
        name="notes_search",
    )

    assert _demo_calls(prompt, search, found) == [("notes_delete", {"note_id": 4})]


def test_demo_model_search_keeps_the_subjects_words() -> None:
    assert _demo_calls(HumanMessage("what do you know about the offsite in March?")) == [
        ("notes_search", {"query": "offsite March", "limit": 5})
    ]
