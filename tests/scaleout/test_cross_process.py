"""Two processes' worth of runtime (two systems, each with its own engine, event bus and,
on PostgreSQL, its own LISTEN connection) over one store: a run executed by one is
streamed and cancelled from the other. Runs on SQLite (polling) and PostgreSQL
(LISTEN/NOTIFY) through the ``backend`` fixture."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from identity import local_principal
from runtime.events import TERMINAL
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from runtime.worker import Worker
from store.models import Run, RunEvent

SLOW_MODEL = f"scripted:{Path(__file__).parents[1] / 'api' / 'slow_model.py'}:turn"
HELLO = {"messages": [{"type": "human", "content": "go"}]}

pytestmark = pytest.mark.usefixtures("backend")


async def _status(system, run_id: str) -> str:  # type: ignore[no-untyped-def]
    async with system.db.session() as session:
        return (await session.execute(select(Run.status).where(Run.run_id == run_id))).scalar_one()


async def test_a_run_executed_elsewhere_streams_every_event_once(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, model=SLOW_MODEL)
    async with open_system(settings) as executing, open_system(settings) as serving:
        api = Runner(serving)
        worker = Worker(Runner(executing), concurrency=2)
        worker.start()
        try:
            run = await api.submit(RunRequest(principal=local_principal(), input=HELLO))
            async with asyncio.timeout(60):
                streamed = [item async for item in api.events.follow(run.run_id)]
        finally:
            await worker.stop()
        async with serving.db.session() as session:
            stored = (
                await session.execute(
                    select(RunEvent.seq, RunEvent.event)
                    .where(RunEvent.run_id == run.run_id)
                    .order_by(RunEvent.seq)
                )
            ).all()
    assert [(item.seq, item.event) for item in streamed] == [tuple(row) for row in stored]
    assert [item.seq for item in streamed] == list(range(1, len(streamed) + 1))
    assert streamed[-1].event == "end" and len(streamed) > 6
    assert not api.events.is_live(run.run_id)  # followed through the store, not in-process


async def test_a_cancel_written_by_another_process_stops_the_run_there(data_dir: Path) -> None:
    settings = Settings(data_dir=data_dir, model=SLOW_MODEL)
    async with open_system(settings) as executing, open_system(settings) as serving:
        worker = Worker(Runner(executing), concurrency=1)
        worker.start()
        try:
            api = Runner(serving)
            run = await api.submit(RunRequest(principal=local_principal(), input=HELLO))
            async with asyncio.timeout(30):
                while await _status(serving, run.run_id) != "running":
                    await asyncio.sleep(0.05)
            async with serving.db.transaction() as session:  # what POST .../cancel writes
                row = await session.get(Run, run.run_id)
                assert row is not None
                row.cancel_requested = "interrupt"
            async with asyncio.timeout(30):
                while await _status(serving, run.run_id) not in TERMINAL:
                    await asyncio.sleep(0.05)
        finally:
            await worker.stop()
        async with serving.db.session() as session:
            final = await session.get(Run, run.run_id)
            assert final is not None
            turns = (
                await session.execute(
                    select(RunEvent.seq).where(
                        RunEvent.run_id == run.run_id, RunEvent.event == "updates"
                    )
                )
            ).all()
    assert (final.status, final.stop_reason) == ("interrupted", "cancelled")
    assert len(turns) < 12  # stopped before its six model turns and six tool calls
