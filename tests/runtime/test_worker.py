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
