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

They also drive the ``planner`` graph (``graphs.planner``), recognising its three kinds of
call by the messages it sends: the planner (``Request:`` … ``Tools you may plan with:``)
gets the turn's gold plan as a ``submit_plan`` call (structured output), the replanner
(``Plan and progress:``) continues with the pending steps or finishes with the gold answer
citing the steps (``revise_plan``), and each step's executor (``Do step N:``) makes that
step's gold calls and reports their results as ``Results: [json]``, which is how later
steps learn earlier results: from the plan's findings in their prompt, as a model would.
``malformed`` first submits an invalid plan (the graph's repair attempt gets a valid one).
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
    role = planner_role(messages)
    if role == "plan":
        return _plan_turn(messages)
    if role == "replan":
        return _replan_turn(messages)
    if role == "step":
        return _step_turn(messages)
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


# --- the planner graph ----------------------------------------------------------------------

PLAN_TOOL = "submit_plan"
REPLAN_TOOL = "revise_plan"
RESULTS = "Results: "
_PLAN_MARK = "\n\nTools you may plan with:\n"
_REPLAN_MARK = "\n\nPlan and progress:\n"
_STEP_MARK = re.compile(r"\n\nDo step (\d+): ")
_STEP_LINE = re.compile(r"^(\d+)\. \[(\w+)\] ")
_FOUND = "   found: "


def planner_role(messages: Sequence[BaseMessage]) -> str | None:
    """``plan``, ``replan`` or ``step`` when ``messages`` are a planner graph's call
    (``graphs.planner``'s prompts), else None."""
    position, _ = _this_turn(messages)
    text = str(messages[position].content) if position >= 0 else ""
    if not text.startswith("Request:\n"):
        return None
    if _PLAN_MARK in text:
        return "plan"
    if _REPLAN_MARK in text:
        return "replan"
    if _STEP_MARK.search(text) and "\n\nPlan:\n" in text:
        return "step"
    return None


def _planner_text(messages: Sequence[BaseMessage]) -> str:
    position, _ = _this_turn(messages)
    return str(messages[position].content)


def _request_turn(context: CaseContext, text: str, end: str) -> Turn:
    request = text[len("Request:\n") : text.index(end)]
    for turn in context.case.turns:  # a repeated input plays its first turn's gold
        if turn_input(turn, context.values) == request:
            return turn
    raise RuntimeError(f"case {context.case.id}: no turn has the input {request[:80]!r}")


def plan_progress(plan_text: str) -> list[tuple[int, str, str]]:
    """``(number, status, found)`` of each step in a planner prompt's plan text."""
    steps: list[tuple[int, str, str]] = []
    for line in plan_text.splitlines():
        header = _STEP_LINE.match(line)
        if header:
            steps.append((int(header.group(1)), header.group(2), ""))
        elif line.startswith(_FOUND) and steps:
            number, status, _ = steps[-1]
            steps[-1] = (number, status, line[len(_FOUND) :])
    return steps


def _reported(found: str) -> list[Any]:
    """The results a step reported in its finding (``Results: [json]``); none if absent."""
    at = found.find(RESULTS)
    if at < 0:
        return []
    try:
        value, _ = json.JSONDecoder().raw_decode(found, at + len(RESULTS))
    except json.JSONDecodeError:
        return []
    return value if isinstance(value, list) else []


def _plan_step(step: Any) -> dict[str, Any]:
    return {"goal": step.goal, "tools": list(step.tools), "done_when": step.done_when}


def _plan_turn(messages: Sequence[BaseMessage]) -> dict[str, Any]:
    turn = _request_turn(_current(), _planner_text(messages), _PLAN_MARK)
    steps = [_plan_step(step) for step, _ in turn.gold_plan()]
    if not steps:  # nothing to call: one step that answers from what is known
        steps = [{"goal": "Answer the request.", "tools": [], "done_when": "It is answered."}]
    return {"content": "", "tool_calls": [{"name": PLAN_TOOL, "args": {"steps": steps}}]}


def _replan_turn(messages: Sequence[BaseMessage]) -> dict[str, Any]:
    context = _current()
    text = _planner_text(messages)
    turn = _request_turn(context, text, _REPLAN_MARK)
    progress = plan_progress(text[text.index(_REPLAN_MARK) + len(_REPLAN_MARK) :])
    gold = turn.gold_plan()
    pending = [n for n, status, _ in progress if status == "pending" and 0 < n <= len(gold)]
    if pending:
        args: dict[str, Any] = {
            "action": "continue",
            "steps": [_plan_step(gold[n - 1][0]) for n in pending],
        }
    else:
        results = [
            r for _, status, found in progress if status != "pending" for r in _reported(found)
        ]
        answer = resolve(turn.answer, context_resolver(context.values, results)) or "Done."
        cited = " ".join(f"[step {n}]" for n, status, _ in progress if status != "pending")
        args = {"action": "finish", "answer": f"{answer} {cited}".strip()}
    return {"content": "", "tool_calls": [{"name": REPLAN_TOOL, "args": args}]}


def _step_turn(messages: Sequence[BaseMessage]) -> dict[str, Any]:
    context = _current()
    text = _planner_text(messages)
    marker = _STEP_MARK.search(text)
    assert marker is not None
    number = int(marker.group(1))
    turn = _request_turn(context, text, "\n\nPlan:\n")
    plan_text = text[text.index("\n\nPlan:\n") : marker.start()]
    earlier = [
        r
        for n, status, found in plan_progress(plan_text)
        if n < number and status != "pending"
        for r in _reported(found)
    ]
    gold = turn.gold_plan()
    calls = gold[number - 1][1] if 0 < number <= len(gold) else []
    _, since = _this_turn(messages)
    taken, results = _gold_progress(since)
    if taken < len(calls):
        step = calls[taken]
        resolver = context_resolver(context.values, earlier + results)
        return {
            "content": f"Step {number}, call {taken + 1} of {len(calls)}: {step.tool}.",
            "tool_calls": [{"name": step.tool, "args": resolve(step.args, resolver)}],
        }
    made = ", ".join(step.tool for step in calls) or "no tool"
    report = json.dumps(results, ensure_ascii=False, default=str)
    return {"content": f"Step {number} done with {made}. {RESULTS}{report}"}


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
    if planner_role(messages) in ("plan", "replan"):
        return _gold_turn(messages)  # structured output: the plan, not tool calls
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
    """The gold plan with every tool call broken, and JSON answers cut short; a planner's
    first plan is invalid (steps without done criteria, tools as one string)."""
    role = planner_role(messages)
    if role == "replan":
        return _gold_turn(messages)
    if role == "plan":
        turn = _gold_turn(messages)
        _, since = _this_turn(messages)
        if any(isinstance(m, ToolMessage) for m in since):  # the repair attempt
            return turn
        steps = turn["tool_calls"][0]["args"]["steps"]
        broken = [{"goal": s["goal"], "tools": ", ".join(s["tools"])} for s in steps]
        return {"content": "", "tool_calls": [{"name": PLAN_TOOL, "args": {"steps": broken}}]}
    turn = _gold_turn(messages)
    calls = turn.get("tool_calls")
    if calls:
        call = calls[0]
        _, since = _this_turn(messages)
        flavour = sum(1 for m in since if isinstance(m, AIMessage))
        if role == "step":  # each step is a fresh transcript: vary the breakage by step too
            found = _STEP_MARK.search(_planner_text(messages))
            flavour += int(found.group(1)) - 1 if found else 0
        flavour %= 3
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
