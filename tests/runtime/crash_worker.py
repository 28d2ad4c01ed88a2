"""A worker process for the crash tests: runs (or resumes) a thread with an extra tool
whose call blocks inside its transaction while a block file exists.

Usage: python -m tests.runtime.crash_worker run|resume THREAD_ID WORKDIR
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from tests.helpers import NoteRef, NoteTitleInput, add_note
from tools import ToolContext, ToolSpec

WORKDIR = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(".")


async def slow_note(ctx: ToolContext, args: NoteTitleInput) -> NoteRef:
    note = await add_note(ctx, args.title)
    if args.title == "second" and (WORKDIR / "block").exists():
        (WORKDIR / "blocked").write_text(str(note.id))
        await asyncio.Event().wait()  # hold the transaction open until the test kills us
    return note


SLOW_NOTE = ToolSpec(
    name="slow_note",
    description="Create a note; blocks mid-transaction while a block file exists.",
    input_model=NoteTitleInput,
    output_model=NoteRef,
    handler=slow_note,
    risk="write",
    scope="notes:write",
    timeout_seconds=3600,
)

TURNS: list[dict[str, Any]] = [
    {
        "tool_calls": [
            {"name": "slow_note", "args": {"title": "first"}},
            {"name": "slow_note", "args": {"title": "second"}},
        ]
    },
    {"tool_calls": [{"name": "slow_note", "args": {"title": "third"}}]},
    {"content": "done"},
]


def turn(messages: list[BaseMessage]) -> dict[str, Any]:
    """The scripted model: logs every call, so the test can count model executions."""
    index = sum(isinstance(m, AIMessage) for m in messages)
    with open(WORKDIR / "model_calls.log", "a") as log:
        log.write(f"{index} {time.time()}\n")
    return TURNS[index]


MODEL = f"scripted:{Path(__file__).resolve()}:turn"


async def main(mode: str, thread_id: str) -> None:
    settings = Settings(model=MODEL)
    async with open_system(settings, extra_tools=[SLOW_NOTE]) as system:
        request = RunRequest(
            principal=local_principal(),
            thread_id=thread_id,
            input_text="make three notes" if mode == "run" else None,
        )
        summary = await Runner(system).run(request)
        print(json.dumps(summary.to_dict()), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
