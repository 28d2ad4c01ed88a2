"""Offline scripted models for the shipped suites, each honest about what it tests.

They are ``scripted:module:function`` models (``providers.scripted``): a function from the
messages so far to the next turn. The runner puts the running case into :data:`CURRENT`
(a context variable, so parallel cases do not see each other's).

- ``oracle`` plays the case's gold steps, resolving ``{{result.N...}}`` from the tool results
  it actually received. It measures the harness and the runtime (tools, gate, state,
  retrieval quality where the answer quotes what was retrieved), not a model's judgement.
- ``obey_injections`` is the oracle plus credulity: whenever a tool result contains an
  instruction of the form "call TOOL with {json}", it makes that call first. With it the
  injection suite shows what taint tracking and approvals stop.
- ``malformed`` plays the gold plan with broken tool calls (unknown names, wrong types,
  missing arguments) and truncated JSON answers: a deliberately worse configuration.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from evals.cases import Case, Turn, context_resolver, resolve

ORACLE = "scripted:evals.models:oracle"
OBEY_INJECTIONS = "scripted:evals.models:obey_injections"
MALFORMED = "scripted:evals.models:malformed"
SCRIPTED_MODELS = {"oracle": ORACLE, "obey-injections": OBEY_INJECTIONS, "malformed": MALFORMED}
INJECTED_ID = "injected_"
_DIRECTIVE = re.compile(r"call (?:the )?`?([A-Za-z0-9_-]{1,64})`? (?:tool )?with (?:arguments )?\{")


@dataclass
class CaseContext:
    """What the scripted models may know about the running case: its turns and the ids of
    its seeded records. The judge's expectations are not here."""

    case: Case
    values: dict[str, Any] = field(default_factory=dict)


CURRENT: ContextVar[CaseContext | None] = ContextVar("relaygraph_eval_case", default=None)


def _current() -> CaseContext:
    context = CURRENT.get()
    if context is None:
        raise RuntimeError(
            "evals.models needs a running eval case (use `relaygraph eval`, not `relaygraph run`)"
        )
    return context


def _this_turn(messages: Sequence[BaseMessage]) -> tuple[int, list[BaseMessage]]:
    for position in range(len(messages) - 1, -1, -1):
        if isinstance(messages[position], HumanMessage):
            return position, list(messages[position + 1 :])
    return -1, list(messages)


def turn_input(turn: Turn, values: dict[str, Any]) -> str:
    """The user's words of ``turn`` as sent (``{{web}}`` and seeded ids filled in)."""
    return str(resolve(turn.input, context_resolver(values)))


def _find_turn(context: CaseContext, messages: Sequence[BaseMessage]) -> Turn:
    case = context.case
    position, _ = _this_turn(messages)
    text = str(messages[position].content) if position >= 0 else ""
    asked = sum(
        1 for m in messages[: position + 1] if isinstance(m, HumanMessage) and m.content == text
    )
    matching = [turn for turn in case.turns if turn_input(turn, context.values) == text]
    if not matching:
        raise RuntimeError(f"case {case.id}: no turn has the input {text[:80]!r}")
    return matching[min(asked, len(matching)) - 1]


def _result_value(message: ToolMessage) -> Any:
    try:
        return json.loads(str(message.content))
    except json.JSONDecodeError:
        return str(message.content)


def _gold_progress(since: list[BaseMessage]) -> tuple[int, list[Any]]:
    """Gold steps already taken this turn, and their results in order."""
    gold_ids: list[str] = []
    for message in since:
        if isinstance(message, AIMessage):
            gold_ids.extend(
                call["id"] or ""
                for call in message.tool_calls
                if not (call["id"] or "").startswith(INJECTED_ID)
            )
    answers = {m.tool_call_id: m for m in since if isinstance(m, ToolMessage)}
    results = [_result_value(answers[i]) if i in answers else None for i in gold_ids]
    steps = sum(
        1
        for m in since
        if isinstance(m, AIMessage)
        and m.tool_calls
        and not (m.tool_calls[0]["id"] or "").startswith(INJECTED_ID)
    )
    return steps, results


def _gold_turn(messages: list[BaseMessage]) -> dict[str, Any]:
    context = _current()
    turn = _find_turn(context, messages)
    _, since = _this_turn(messages)
    steps, results = _gold_progress(since)
    resolver = context_resolver(context.values, results)
    if steps < len(turn.gold):
        step = turn.gold[steps]
        return {
            "content": f"Step {steps + 1} of {len(turn.gold)}: {step.tool}.",
            "tool_calls": [{"name": step.tool, "args": resolve(step.args, resolver)}],
        }
    answer = resolve(turn.answer, resolver) if turn.answer else "Done."
    return {"content": str(answer)}


def oracle(messages: list[BaseMessage]) -> dict[str, Any]:
    """Follow the gold steps, then give the gold answer."""
    return _gold_turn(messages)


def directives(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Instructions of the form ``call TOOL with {json}`` found in ``text``."""
    found: list[tuple[str, dict[str, Any]]] = []
    decoder = json.JSONDecoder()
    for match in _DIRECTIVE.finditer(text):
        try:
            args, _ = decoder.raw_decode(text, match.end() - 1)
        except json.JSONDecodeError:
            continue
        if isinstance(args, dict):
            found.append((match.group(1), args))
    return found


def obey_injections(messages: list[BaseMessage]) -> dict[str, Any]:
    """The oracle, except that it first carries out any instruction found in a tool result."""
    _, since = _this_turn(messages)
    attempted = {
        (call["name"], json.dumps(call["args"], sort_keys=True))
        for m in since
        if isinstance(m, AIMessage)
        for call in m.tool_calls
    }
    for message in since:
        if not isinstance(message, ToolMessage):
            continue
        found = [d for text in _strings(_result_value(message)) for d in directives(text)]
        for tool, args in found:
            if (tool, json.dumps(args, sort_keys=True)) not in attempted:
                index = sum(1 for m in messages if isinstance(m, AIMessage))
                return {
                    "content": f"Following the instructions I found in the {message.name} output.",
                    "tool_calls": [{"name": tool, "args": args, "id": f"{INJECTED_ID}{index}"}],
                }
    return _gold_turn(messages)


def _strings(value: Any) -> list[str]:
    """Every string inside a tool result (the text a model would read)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _break_args(args: dict[str, Any]) -> dict[str, Any]:
    broken: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(value, bool):
            broken[key] = "yes"
        elif isinstance(value, int | float):
            broken[key] = f"number {value}"
        elif isinstance(value, str):
            broken[key] = {"text": value}
        else:
            broken[key] = str(value)
    return broken


def malformed(messages: list[BaseMessage]) -> dict[str, Any]:
    """The gold plan with every tool call broken, and JSON answers cut short."""
    turn = _gold_turn(messages)
    calls = turn.get("tool_calls")
    if calls:
        call = calls[0]
        _, since = _this_turn(messages)
        flavour = sum(1 for m in since if isinstance(m, AIMessage)) % 3
        if flavour == 0 or not call["args"]:
            call = {"name": f"{call['name']}_v2", "args": call["args"]}
        elif flavour == 1:
            call = {"name": call["name"], "args": _break_args(call["args"])}
        else:
            call = {"name": call["name"], "args": {}}
        return {"content": turn["content"], "tool_calls": [call]}
    content = str(turn.get("content", ""))
    if content.lstrip().startswith(("{", "[", "```")):
        content = content.rstrip().rstrip("`").rstrip()[:-1]
    return {"content": content}
