"""A scripted model for API tests: one tool call, then the provider fails."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    if any(isinstance(m, AIMessage) for m in messages):
        raise RuntimeError("the provider is down")
    return {"content": "looking", "tool_calls": [{"name": "notes_search", "args": {"query": "x"}}]}
