"""The crash matrix's scripted model. Per run (the human message names the job):
turn 0 proposes two side effects at once (``slow_note`` ``JOB/a``, then ``JOB/b``, which
takes a while inside its transaction), turn 1 one more (``JOB/c``), turn 2 answers. Each
turn takes ``MODEL_SECONDS``; phases go to ``RELAYGRAPH_TEST_PHASE_LOG`` with the pid so
the test can tell where each SIGKILL landed."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

MODEL_SECONDS = 0.25


def phase(job: str, what: str) -> None:
    log = os.environ.get("RELAYGRAPH_TEST_PHASE_LOG")
    if log:
        with Path(log).open("a") as handle:
            handle.write(f"{os.getpid()} {job} {what}\n")


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    last_human = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    job = str(messages[last_human].content)
    done = sum(isinstance(m, AIMessage) for m in messages[last_human:])
    phase(job, f"model-start {done}")
    time.sleep(MODEL_SECONDS)
    phase(job, f"model-end {done}")
    if done == 0:
        return {
            "content": "",
            "tool_calls": [
                {"name": "slow_note", "args": {"title": f"{job}/a"}},
                {"name": "slow_note", "args": {"title": f"{job}/b"}},
            ],
        }
    if done == 1:
        return {"content": "", "tool_calls": [{"name": "slow_note", "args": {"title": f"{job}/c"}}]}
    return {"content": f"done {job}"}
