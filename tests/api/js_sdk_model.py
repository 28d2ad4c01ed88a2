"""The scripted model behind tests/api/test_js_sdk.py: the reply depends on the last human
message, so one server serves every step of the JS client's walk.

- ``tidy up``: save a note, then delete it (which needs approval: the run stops at an
  interrupt), then ``finished`` once resumed.
- ``slow ...``: ``SLOW_TURNS`` notes_search calls of ``TURN_SECONDS`` each, then an answer
  (a run that is still running when the client cancels it).
- anything else: ``echo: <text>`` at once.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

SLOW_TURNS = 40
TURN_SECONDS = 0.25


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    last_human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    text = str(messages[last_human].content)
    done = sum(isinstance(m, AIMessage) for m in messages[last_human:])
    if text == "tidy up":
        script: list[dict[str, Any]] = [
            {
                "content": "saving",
                "tool_calls": [{"name": "notes_create", "args": {"title": "keep", "body": "1"}}],
            },
            {
                "content": "deleting",
                "tool_calls": [{"name": "notes_delete", "args": {"note_id": 1}}],
            },
            {"content": "finished"},
        ]
        return script[min(done, len(script) - 1)]
    if text.startswith("slow"):
        time.sleep(TURN_SECONDS)
        if done < SLOW_TURNS:
            return {
                "content": f"step {done}",
                "tool_calls": [{"name": "notes_search", "args": {"query": "x"}}],
            }
        return {"content": f"finished: {text}"}
    return {"content": f"echo: {text}"}
