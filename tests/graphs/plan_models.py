"""Scripted model turns for the planner and triage tests (``plan_models:NAME`` specs).

Each function answers from the messages alone (which prompt is the system message, which
step is asked for, which tool results came back), so runs replay identically after a
restart. Structured calls are answered with the schema's tool call.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage, ToolMessage

LAUNCH_PLAN = [
    {"goal": "Find notes about the launch", "tools": ["notes_search"], "done_when": "notes found"},
    {"goal": "Save a summary note", "tools": ["notes_create"], "done_when": "note saved"},
]


def role(messages: list[BaseMessage]) -> str:
    system = next((str(m.content) for m in messages if isinstance(m, SystemMessage)), "")
    for prefix, name in (
        ("You plan multi-step", "planner"),
        ("You review the progress", "replanner"),
        ("You are the executor of one step", "step"),
        ("You triage incoming", "classify"),
        ("You draft the reply", "draft"),
    ):
        if system.startswith(prefix):
            return name
    raise AssertionError(f"unexpected system prompt: {system[:60]!r}")


def _human(messages: list[BaseMessage]) -> str:
    return next(str(m.content) for m in messages if isinstance(m, HumanMessage))


def step_number(messages: list[BaseMessage]) -> int:
    found = re.search(r"Do step (\d+):", _human(messages))
    assert found, "not a step prompt"
    return int(found.group(1))


def results(messages: list[BaseMessage]) -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage)]


def plan(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": "submit_plan", "args": {"steps": steps}}]}


def finish(answer: str) -> dict[str, Any]:
    return {"tool_calls": [{"name": "revise_plan", "args": {"action": "finish", "answer": answer}}]}


def keep_going(steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tool_calls": [{"name": "revise_plan", "args": {"action": "continue", "steps": steps}}]}


def tool(name: str, **args: Any) -> dict[str, Any]:
    return {"content": f"calling {name}", "tool_calls": [{"name": name, "args": args}]}


def report(messages: list[BaseMessage]) -> dict[str, Any]:
    last = results(messages)[-1]
    if last.status == "error":
        return {"content": f"step failed: {last.content}"}
    return {"content": f"found {last.content}"}


def _done(messages: list[BaseMessage], number: int) -> bool:
    return f"{number}. [done]" in _human(messages) or f"{number}. [failed]" in _human(messages)


def launch(messages: list[BaseMessage]) -> dict[str, Any]:
    """Plan two steps (search, then save), replan after each, finish citing both."""
    kind = role(messages)
    if kind == "planner":
        return plan(LAUNCH_PLAN)
    if kind == "step":
        if results(messages):
            return report(messages)
        if step_number(messages) == 1:
            return tool("notes_search", query="launch")
        return tool("notes_create", title="launch summary", body="launch is on Friday")
    if _done(messages, 2):
        return finish("The launch is on Friday [step 1]; a summary note was saved [step 2].")
    return keep_going(LAUNCH_PLAN[1:])


def repaired(messages: list[BaseMessage]) -> dict[str, Any]:
    """Like ``launch``, but the first plan is malformed (no steps) and gets repaired."""
    if role(messages) == "planner" and not any("did not match" in str(m.content) for m in messages):
        return {"content": json.dumps({"steps": []})}
    return launch(messages)


DELETE_PLAN = [
    {"goal": "Create a scratch note", "tools": ["notes_create"], "done_when": "note saved"},
    {"goal": "Delete the scratch note", "tools": ["notes_delete"], "done_when": "deleted"},
]


def delete_step(messages: list[BaseMessage]) -> dict[str, Any]:
    """Step 2 deletes a note: the gate asks a reviewer; a rejection makes the step fail."""
    kind = role(messages)
    if kind == "planner":
        return plan(DELETE_PLAN)
    if kind == "step":
        if results(messages):
            return report(messages)
        if step_number(messages) == 1:
            return tool("notes_create", title="scratch", body="temporary")
        return tool("notes_delete", note_id=1)
    human = _human(messages)
    if "2. [failed]" in human:
        return finish("The note was kept: the reviewer rejected deleting it [step 2].")
    if _done(messages, 2):
        return finish("Created and deleted the scratch note [step 1] [step 2].")
    return keep_going(DELETE_PLAN[1:])


def recovering(messages: list[BaseMessage]) -> dict[str, Any]:
    """Step 1 fails (no such note); the replanner replaces it with a step that works."""
    kind = role(messages)
    first = {"goal": "Update note 99", "tools": ["notes_update"], "done_when": "updated"}
    fallback = {"goal": "Create the note instead", "tools": ["notes_create"], "done_when": "saved"}
    if kind == "planner":
        return plan([first])
    if kind == "step":
        if results(messages):
            return report(messages)
        if step_number(messages) == 1:
            return tool("notes_update", note_id=99, body="new text")
        return tool("notes_create", title="fresh", body="new text")
    human = _human(messages)
    if "2. [done]" in human:
        return finish("Note 99 did not exist [step 1], so a new note was created [step 2].")
    assert "1. [failed]" in human, human
    return keep_going([fallback])


def triage(messages: list[BaseMessage]) -> dict[str, Any]:
    kind = role(messages)
    if kind == "classify":
        return {
            "tool_calls": [
                {
                    "name": "classify_request",
                    "args": {
                        "category": "bug",
                        "urgency": "high",
                        "summary": "Export button fails",
                        "search_terms": ["export"],
                    },
                }
            ]
        }
    assert kind == "draft"
    data = _human(messages)
    cited = "(note 1)" if '"title": "export' in data else ""
    return {
        "content": json.dumps(
            {
                "reply": f"Thanks, we are on it {cited}".strip(),
                "ticket_title": "Export button fails",
                "ticket_body": f"Customer reports export failing {cited}".strip(),
            }
        )
    }


def triage_repaired(messages: list[BaseMessage]) -> dict[str, Any]:
    """The first classification has an unknown category; the repair fixes it."""
    if role(messages) == "classify" and not any(
        "did not match" in str(m.content) for m in messages
    ):
        return {
            "tool_calls": [
                {
                    "name": "classify_request",
                    "args": {"category": "panic", "urgency": "high", "summary": "x"},
                }
            ]
        }
    return triage(messages)
