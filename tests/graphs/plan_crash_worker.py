"""A worker process for the planner crash test: runs (or continues) a planner thread whose
step 2 calls ``slow_note``, which blocks inside its transaction while a block file exists.

Usage: python -m tests.graphs.plan_crash_worker run|resume THREAD_ID WORKDIR
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage

from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from tests.graphs import plan_models as pm
from tests.runtime.crash_worker import SLOW_NOTE

WORKDIR = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(".")
STEPS = [
    {"goal": "Save the first note", "tools": ["slow_note"], "done_when": "saved"},
    {"goal": "Save the second note", "tools": ["slow_note"], "done_when": "saved"},
]


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    """Two steps, one slow_note each; every model call is logged for the test to count."""
    kind = pm.role(messages)
    with open(WORKDIR / "model_calls.log", "a") as log:
        log.write(f"{kind} {time.time()}\n")
    if kind == "planner":
        return pm.plan(STEPS)
    if kind == "step":
        if pm.results(messages):
            return pm.report(messages)
        title = "first" if pm.step_number(messages) == 1 else "second"
        return pm.tool("slow_note", title=title)
    if "2. [done]" in str(messages[-1].content):
        return pm.finish("Both notes are saved [step 1] [step 2].")
    return pm.keep_going(STEPS[1:])


MODEL = f"scripted:{Path(__file__).resolve()}:turn"


async def main(mode: str, thread_id: str) -> None:
    async with open_system(Settings(model=MODEL), extra_tools=[SLOW_NOTE]) as system:
        request = RunRequest(
            principal=local_principal(),
            assistant_id="planner" if mode == "run" else None,
            thread_id=thread_id,
            input_text="save two notes" if mode == "run" else None,
        )
        summary = await Runner(system).run(request)
        print(json.dumps(summary.to_dict()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
