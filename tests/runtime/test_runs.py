"""Run bookkeeping: run rows, events, cancellation and pinned versions."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import select

from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import Run, RunEvent, Thread
from tests.helpers import call, write_script
from tools import ToolContext, ToolSpec

PRINCIPAL = local_principal()


class WaitInput(BaseModel):
    pass


class WaitOutput(BaseModel):
    waited: bool


def waiting_tool(started: asyncio.Event, release: asyncio.Event) -> ToolSpec:
    async def wait(ctx: ToolContext, args: WaitInput) -> WaitOutput:
        started.set()
        await release.wait()
        return WaitOutput(waited=True)

    return ToolSpec(
        name="wait_here",
        description="Waits until released.",
        input_model=WaitInput,
        output_model=WaitOutput,
        handler=wait,
        risk="read",
        scope="notes:read",
    )


async def test_run_rows_and_events_are_recorded(tmp_path: Path, data_dir: Path) -> None:
    spec = write_script(
        tmp_path / "s.json",
        [{"tool_calls": [call("notes_search", query="x")]}, {"content": "none found"}],
    )
    async with open_system(Settings(data_dir=data_dir, model=spec)) as system:
        summary = await Runner(system).run(
            RunRequest(principal=PRINCIPAL, input_text="look", limits={"max_steps": 7})
        )
        async with system.db.session() as session:
            run = await session.get(Run, summary.run_id)
            thread = await session.get(Thread, summary.thread_id)
            events = (
                (
                    await session.execute(
                        select(RunEvent).where(RunEvent.run_id == run.run_id).order_by(RunEvent.seq)
                    )
                )
                .scalars()
                .all()
            )
    assert run is not None and thread is not None
    assert (run.status, run.stop_reason, run.requester, run.tenant) == (
        "success",
        "completed",
        "local",
        "default",
    )
    assert (run.graph_id, run.graph_version, run.prompt_version) == ("agent", "1", "v1")
    assert run.limits["max_steps"] == 7 and run.started_at and run.ended_at
    assert (thread.status, thread.graph_version, thread.prompt_version) == ("idle", "1", "v1")
    assert thread.metadata_["graph_id"] == "agent"
    names = [event.event for event in events]
    assert names[0] == "metadata" and names[-1] == "end"
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    assert names.count("updates") == 4  # model, act, model, finish


async def test_cancelled_run_is_recorded_and_the_thread_resumes(
    tmp_path: Path, data_dir: Path
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    spec = write_script(
        tmp_path / "s.json", [{"tool_calls": [call("wait_here")]}, {"content": "after wait"}]
    )
    settings = Settings(data_dir=data_dir, model=spec)
    async with open_system(settings, extra_tools=[waiting_tool(started, release)]) as system:
        runner = Runner(system)
        task = asyncio.create_task(
            runner.run(RunRequest(principal=PRINCIPAL, input_text="wait", thread_id="t-cancel"))
        )
        async with asyncio.timeout(30):
            await started.wait()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        async with system.db.session() as session:
            run = (await session.execute(select(Run))).scalar_one()
            thread = await session.get(Thread, "t-cancel")
        assert (run.status, run.stop_reason) == ("interrupted", "cancelled")
        assert thread is not None and thread.status == "idle"

        release.set()
        resumed = await runner.run(RunRequest(principal=PRINCIPAL, thread_id="t-cancel"))
        assert (resumed.stop_reason, resumed.final_message) == ("completed", "after wait")
