"""The SQL run queue: leases, reclaiming lapsed runs, no double execution, hand-back."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from graphs.agent import turn_counts
from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from runtime.worker import Worker
from store.models import Run, RunEvent, utcnow

SLOW_MODEL = f"scripted:{Path(__file__).parents[1] / 'api' / 'slow_model.py'}:turn"
PRINCIPAL = local_principal()
HELLO = {"messages": [{"type": "human", "content": "go"}]}
pytestmark = pytest.mark.usefixtures("backend")  # SQLite, and PostgreSQL (slow)


async def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)


async def _runs(system) -> list[Run]:  # type: ignore[no-untyped-def]
    async with system.db.session() as session:
        return list((await session.execute(select(Run).order_by(Run.created_at))).scalars())


async def test_a_run_whose_lease_lapsed_is_claimed_again_and_completes(data_dir: Path) -> None:
    async with open_system(Settings(data_dir=data_dir, model=SLOW_MODEL)) as system:
        runner = Runner(system)
        run = await runner.submit(RunRequest(principal=PRINCIPAL, input=HELLO))
        async with system.db.transaction() as session:  # a worker on another host died
            row = await session.get(Run, run.run_id)
            assert row is not None
            row.status, row.lease_owner, row.attempt = "running", "elsewhere:1:dead", 1
            row.lease_expires_at = utcnow() - timedelta(seconds=1)
        worker = Worker(runner, concurrency=1)
        worker.start()
        try:

            async def done() -> bool:
                return (await _runs(system))[0].status == "success"

            await _wait_for(done)
        finally:
            await worker.stop()
        (final,) = await _runs(system)
        assert final.attempt == 2 and final.lease_owner is None and final.stop_reason == "completed"


async def test_two_workers_never_run_the_same_run(data_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text('[{"content": "hi"}]')
    async with open_system(Settings(data_dir=data_dir, model=f"scripted:{script}")) as system:
        runner = Runner(system)
        for _ in range(12):
            await runner.submit(RunRequest(principal=PRINCIPAL, input=HELLO))
        workers = [Worker(runner, concurrency=3), Worker(runner, concurrency=3)]
        for worker in workers:
            worker.start()
        try:

            async def all_done() -> bool:
                return all(run.status == "success" for run in await _runs(system))

            await _wait_for(all_done)
        finally:
            for worker in workers:
                await worker.stop()
        runs = await _runs(system)
        assert [run.attempt for run in runs] == [1] * 12
        async with system.db.session() as session:
            starts = (
                await session.execute(select(RunEvent.run_id).where(RunEvent.event == "metadata"))
            ).scalars()
            assert sorted(starts) == sorted(run.run_id for run in runs)


async def test_shutdown_hands_runs_back_and_another_worker_resumes_them(data_dir: Path) -> None:
    async with open_system(Settings(data_dir=data_dir, model=SLOW_MODEL)) as system:
        runner = Runner(system)
        run = await runner.submit(RunRequest(principal=PRINCIPAL, input=HELLO))
        first = Worker(runner, concurrency=1)
        first.start()

        async def two_steps_done() -> bool:
            state = await runner.graph(system.graphs.get("agent")).aget_state(
                {"configurable": {"thread_id": run.thread_id}}
            )
            return turn_counts(state.values)[0] >= 2

        await _wait_for(two_steps_done)
        await first.stop(grace_seconds=0)
        (handed_back,) = await _runs(system)
        assert (handed_back.status, handed_back.lease_owner) == ("pending", None)

        second = Worker(runner, concurrency=1)
        second.start()
        try:

            async def done() -> bool:
                return (await _runs(system))[0].status == "success"

            await _wait_for(done)
        finally:
            await second.stop()
        state = await runner.graph(system.graphs.get("agent")).aget_state(
            {"configurable": {"thread_id": run.thread_id}}
        )
        humans = [m for m in state.values["messages"] if m.type == "human"]
        assert len(humans) == 1, "the resumed run started over instead of continuing"
        assert state.values["messages"][-1].content == "finished: go"


async def test_a_run_whose_graph_version_is_gone_fails_instead_of_hanging(data_dir: Path) -> None:
    async with open_system(Settings(data_dir=data_dir, model=SLOW_MODEL)) as system:
        runner = Runner(system)
        run = await runner.submit(RunRequest(principal=PRINCIPAL, input=HELLO))
        async with system.db.transaction() as session:  # an upgrade removed its version
            row = await session.get(Run, run.run_id)
            assert row is not None
            row.graph_version = "999"
        worker = Worker(runner, concurrency=1)
        worker.start()
        try:

            async def ended() -> bool:
                return (await _runs(system))[0].status not in ("pending", "running")

            await _wait_for(ended)
        finally:
            await worker.stop()
        (final,) = await _runs(system)
        assert (final.status, final.stop_reason) == ("error", "error")
        assert "version" in (final.error or "") and final.lease_owner is None


@pytest.mark.parametrize("wait_ticks", [0, 1, 3])
async def test_a_cancel_during_set_up_still_ends_the_run_as_cancelled(
    data_dir: Path, wait_ticks: int
) -> None:
    """A cancel that lands before the graph starts (the run still reads its row, plans)
    must end the run, not only its task: the row would otherwise stay running under a
    lease nobody renews."""
    async with open_system(Settings(data_dir=data_dir, model=SLOW_MODEL)) as system:
        runner = Runner(system)
        run = await runner.submit(RunRequest(principal=PRINCIPAL, input=HELLO))
        (claimed,) = await runner.claim_batch("here:1:test", 1)
        task = asyncio.create_task(runner.execute(claimed, "here:1:test"))
        for _ in range(wait_ticks + 1):
            await asyncio.sleep(0)  # the task is inside its set-up, not its graph
        assert runner.cancel_local(run.run_id)
        await asyncio.gather(task, return_exceptions=True)
        (final,) = await _runs(system)
    assert (final.status, final.stop_reason, final.lease_owner) == (
        "interrupted",
        "cancelled",
        None,
    )


async def test_a_shutdown_during_set_up_hands_the_run_back(data_dir: Path) -> None:
    async with open_system(Settings(data_dir=data_dir, model=SLOW_MODEL)) as system:
        runner = Runner(system)
        run = await runner.submit(RunRequest(principal=PRINCIPAL, input=HELLO))
        (claimed,) = await runner.claim_batch("here:1:test", 1)
        task = asyncio.create_task(runner.execute(claimed, "here:1:test"))
        await asyncio.sleep(0)
        runner.hand_back(run.run_id)
        task.cancel()  # what Worker.stop does once its grace period is over
        await asyncio.gather(task, return_exceptions=True)
        (final,) = await _runs(system)
    assert (final.status, final.lease_owner) == ("pending", None)


async def test_a_closing_system_hands_its_running_runs_back(data_dir: Path) -> None:
    """A run task must not outlive its system: closing it mid-run hands the run back to
    the queue (another process resumes it) instead of leaving a task that writes to a
    closed store."""
    settings = Settings(data_dir=data_dir, model=SLOW_MODEL)
    async with open_system(settings) as system:
        runner = Runner(system)
        run = await runner.submit(RunRequest(principal=PRINCIPAL, input=HELLO))
        (claimed,) = await runner.claim_batch("here:1:test", 1)
        task = asyncio.create_task(runner.execute(claimed, "here:1:test"))

        async def started() -> bool:
            return run.run_id in runner._streaming

        await _wait_for(started)
    assert task.done()
    async with open_system(settings) as system:
        (final,) = await _runs(system)
    assert (final.status, final.lease_owner) == ("pending", None)
