"""A scripted model for long runs: each turn sleeps, ``TURNS`` notes_search calls, then
an answer. Used where a run must stay live while streams come and go."""

from __future__ import annotations

import os
import time
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

TURN_SECONDS = float(os.environ.get("LONG_MODEL_TURN_SECONDS", "0.5"))
TURNS = int(os.environ.get("LONG_MODEL_TURNS", "60"))


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    time.sleep(TURN_SECONDS)
    last_human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    done = sum(isinstance(m, AIMessage) for m in messages[last_human:])
    if done < TURNS:
        return {
            "content": f"step {done}",
            "tool_calls": [{"name": "notes_search", "args": {"query": "x"}}],
        }
    return {"content": "finished"}
