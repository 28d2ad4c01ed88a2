"""Scripted turn function for ``benchmarks.step_overhead``.

Used as the model spec ``scripted:benchmarks._turns:turn``. The benchmark puts its
parameters in the user message (``bench tool=notes_search iterations=20``): the
model proposes one call of ``tool`` per turn for ``iterations`` turns, then answers.
Like every scripted turn function it derives the turn from the messages only.
"""

from __future__ import annotations

import re
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

_PARAMS = re.compile(r"(\w+)=(\S+)")


def bench_input(tool: str, iterations: int) -> str:
    return f"bench tool={tool} iterations={iterations}"


def tool_args(tool: str, index: int) -> dict[str, Any]:
    """Arguments of the ``index``-th call (shared with the bare-LangGraph baseline)."""
    if tool == "notes_create":
        return {"title": f"bench note {index}", "body": "benchmark"}
    if tool == "notes_search":
        return {"query": "benchmark", "limit": 1}
    return {"i": index}


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    params: dict[str, str] = {}
    for message in messages:
        if isinstance(message, HumanMessage):
            params = dict(_PARAMS.findall(str(message.content)))
    tool = params.get("tool", "notes_search")
    iterations = int(params.get("iterations", "1"))
    index = sum(1 for message in messages if isinstance(message, AIMessage))
    if index < iterations:
        return {
            "content": "",
            "tool_calls": [{"name": tool, "args": tool_args(tool, index)}],
        }
    return {"content": f"done after {iterations} tool calls"}
