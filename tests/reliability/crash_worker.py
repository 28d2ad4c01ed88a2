"""A worker process for the crash matrix: ``relaygraph worker`` plus the ``slow_note``
tool, with leases shortened to ``LEASE`` seconds so a killed worker's runs are claimed
again quickly (production keeps runtime.runs.LEASE_SECONDS).

Usage: python -m tests.reliability.crash_worker CONCURRENCY
"""

from __future__ import annotations

import asyncio
import signal
import sys

import runtime.runs
import runtime.worker
from tests.helpers import NoteRef, NoteTitleInput, add_note
from tests.reliability.crash_model import phase
from tools import ToolContext, ToolSpec

LEASE = 8.0
TOOL_SECONDS = 0.4


async def slow_note(ctx: ToolContext, args: NoteTitleInput) -> NoteRef:
    job = args.title.rsplit("/", 1)[0]
    phase(job, f"tool-start {args.title}")
    if not args.title.endswith("/a"):
        # Before the first write: the call is in flight, nothing committed, and the
        # SQLite write lock stays free for other runs (holding it would stall them).
        await asyncio.sleep(TOOL_SECONDS)
    note = await add_note(ctx, args.title)
    phase(job, f"tool-end {args.title}")
    return note


SLOW_NOTE = ToolSpec(
    name="slow_note",
    description="Create a note; takes a while inside its transaction.",
    input_model=NoteTitleInput,
    output_model=NoteRef,
    handler=slow_note,
    risk="write",
    scope="notes:write",
    approval="never",
    timeout_seconds=60,
)


async def main(concurrency: int) -> None:
    runtime.runs.LEASE_SECONDS = LEASE
    runtime.worker.LEASE_SECONDS = LEASE  # type: ignore[attr-defined]
    from runtime.runs import Runner
    from runtime.settings import Settings
    from runtime.system import open_system
    from runtime.worker import Worker

    async with open_system(Settings(), extra_tools=[SLOW_NOTE]) as system:
        worker = Worker(Runner(system), concurrency=concurrency)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        worker.start()
        print("ready", flush=True)
        await stop.wait()
        await worker.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
