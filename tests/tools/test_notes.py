"""tools/builtin/notes.py through the executor: create, search, delete, and isolation."""

from __future__ import annotations

from typing import Any

import pytest

from identity import Principal, local_principal
from tools import BUILTIN_TOOLS, CallContext, ToolCall, ToolError, ToolOutcome, ToolSpec

ANN = Principal.with_roles("acme", "ann", ["user"])
BOB = Principal.with_roles("acme", "bob", ["user"])
EVE = Principal.with_roles("globex", "ann", ["admin"])
APPROVED = CallContext(approved_by="rita")


async def _run(system: Any, principal: Principal, name: str, **args: Any) -> ToolOutcome:
    context = APPROVED if name == "notes_delete" else CallContext()
    return await system.executor.execute(ToolCall(name, args, "c1"), principal, context)


def _output(outcome: ToolOutcome) -> dict[str, Any]:
    assert outcome.ok and outcome.output is not None, outcome.content()
    return outcome.output


def _error(outcome: ToolOutcome) -> ToolError:
    assert not outcome.ok and outcome.error is not None, outcome
    return outcome.error


async def _create(system: Any, principal: Principal, title: str, body: str = "") -> int:
    outcome = await _run(system, principal, "notes_create", title=title, body=body)
    return int(_output(outcome)["id"])


async def _titles(system: Any, principal: Principal, query: str) -> list[str]:
    outcome = await _run(system, principal, "notes_search", query=query)
    return [note["title"] for note in _output(outcome)["notes"]]


async def test_create_search_delete(system) -> None:  # type: ignore[no-untyped-def]
    note_id = await _create(system, ANN, "Launch", "The launch is on Friday")

    found = await _run(system, ANN, "notes_search", query="launch friday")
    [note] = _output(found)["notes"]
    assert note["id"] == note_id
    assert (note["title"], note["body"]) == ("Launch", "The launch is on Friday")

    deleted = await _run(system, ANN, "notes_delete", note_id=note_id)
    assert _output(deleted) == {"id": note_id, "deleted": True, "title": "Launch"}
    assert await _titles(system, ANN, "") == []


async def test_every_query_word_must_match(system) -> None:  # type: ignore[no-untyped-def]
    await _create(system, ANN, "launch", "friday")
    await _create(system, ANN, "launch", "monday")

    assert await _titles(system, ANN, "LAUNCH friday") == ["launch"]
    assert len(await _titles(system, ANN, "launch")) == 2
    assert await _titles(system, ANN, "launch sunday") == []


async def test_empty_query_lists_newest_first_up_to_the_limit(system) -> None:  # type: ignore[no-untyped-def]
    for title in ("one", "two", "three"):
        await _create(system, ANN, title)

    outcome = await _run(system, ANN, "notes_search", query="", limit=2)

    assert [note["title"] for note in _output(outcome)["notes"]] == ["three", "two"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("100%", ["100% done"]),
        ("a_b", ["a_b"]),
        ("%", ["100% done"]),
        ("_", ["a_b"]),
        ("c:\\tmp", ["c:\\tmp"]),
    ],
)
async def test_search_treats_like_wildcards_literally(  # type: ignore[no-untyped-def]
    system, query: str, expected: list[str]
) -> None:
    for title in ("100% done", "1000 done", "a_b", "axb", "c:\\tmp", "c:tmp"):
        await _create(system, ANN, title)

    assert await _titles(system, ANN, query) == expected


async def test_other_owner_cannot_see_or_delete_the_note(system) -> None:  # type: ignore[no-untyped-def]
    note_id = await _create(system, ANN, "ann's secret")

    assert await _titles(system, BOB, "secret") == []
    refused = await _run(system, BOB, "notes_delete", note_id=note_id)

    assert _error(refused).code == "not_found"
    assert await _titles(system, ANN, "secret") == ["ann's secret"]


async def test_other_tenant_cannot_see_or_delete_the_note(system) -> None:  # type: ignore[no-untyped-def]
    note_id = await _create(system, ANN, "acme plans")

    # Same user name, admin role, other tenant: still someone else's workspace.
    assert await _titles(system, EVE, "plans") == []
    refused = await _run(system, EVE, "notes_delete", note_id=note_id)

    assert _error(refused).code == "not_found"
    assert str(note_id) in _error(refused).message
    assert await _titles(system, ANN, "plans") == ["acme plans"]


async def test_deleting_a_missing_note_is_not_found(system) -> None:  # type: ignore[no-untyped-def]
    outcome = await _run(system, local_principal(), "notes_delete", note_id=999)

    assert _error(outcome).code == "not_found"


async def test_created_at_is_reported_the_same_way_by_create_and_search(system) -> None:  # type: ignore[no-untyped-def]
    created = await _run(system, ANN, "notes_create", title="t", body="b")
    found = await _run(system, ANN, "notes_search", query="t")

    assert _output(found)["notes"][0]["created_at"] == _output(created)["created_at"]


@pytest.mark.parametrize("tool", BUILTIN_TOOLS, ids=lambda tool: tool.name)
def test_builtin_input_schema_is_a_json_object_schema(tool: ToolSpec) -> None:
    schema = tool.input_schema()

    assert schema["type"] == "object"
    assert isinstance(schema["properties"], dict) and schema["properties"]
    assert set(schema.get("required", [])) <= set(schema["properties"])
    assert schema.get("additionalProperties") is False
    assert all(prop.get("description") for prop in schema["properties"].values())
