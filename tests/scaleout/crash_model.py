"""A scripted model for the cross-process crash test: turn 0 creates a note titled after
the human message (a side effect with a ledger row), turn 1 takes ``FINAL_SECONDS`` (the
window in which the test kills a worker) and answers. Each call is logged with its pid."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

FINAL_SECONDS = 2.0


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    last_human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    title = str(messages[last_human].content)
    done = sum(isinstance(m, AIMessage) for m in messages[last_human:])
    log = os.environ.get("RELAYGRAPH_TEST_MODEL_LOG")
    if log:
        with Path(log).open("a") as handle:
            handle.write(f"{title} {done} {os.getpid()}\n")
    if done == 0:
        return {
            "content": "",
            "tool_calls": [{"name": "notes_create", "args": {"title": title, "body": title}}],
        }
    time.sleep(FINAL_SECONDS)
    return {"content": f"done {title}"}
