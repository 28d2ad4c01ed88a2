"""A scripted model for API tests: each turn takes a while; the turn count comes from
the messages. ``SLOW_TURNS`` notes_search calls, then an answer."""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

SLOW_TURNS = 6
TURN_SECONDS = 0.25


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    time.sleep(TURN_SECONDS)
    last_human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    done = sum(isinstance(m, AIMessage) for m in messages[last_human:])
    if done < SLOW_TURNS:
        return {
            "content": f"step {done}",
            "tool_calls": [{"name": "notes_search", "args": {"query": "x"}}],
        }
    return {"content": f"finished: {messages[last_human].content}"}
