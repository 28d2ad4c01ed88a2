"""A run whose lease lapses while its worker still executes it (the store was busy past
a renewal) is claimed again by that same worker: it must not start a second execution
of the run (that repeated model calls and side effects in the crash matrix)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runtime.runs import Runner
from runtime.worker import Worker
from store.models import Run
from tests.reliability.conftest import (
    crash_system,
    expire_lease,
    job_request,
    note_titles,
    phase_steps,
    read_phases,
)

pytestmark = pytest.mark.reliability


async def test_a_worker_never_executes_its_own_lapsed_run_twice(
    data_dir: Path, phases: Path
) -> None:
    async with crash_system(data_dir) as system:
        runner = Runner(system)
        worker = Worker(runner, concurrency=2)
        worker.start()
        try:
            run = await runner.submit(job_request("lapse"))
            worker.wake()
            async with asyncio.timeout(30):
                while "model-start 0" not in read_phases(phases):
                    await asyncio.sleep(0.02)
            await expire_lease(system.db, run.run_id)
            worker.wake()
            async with asyncio.timeout(60):
                while True:
                    async with system.db.session() as session:
                        row = await session.get(Run, run.run_id)
                        assert row is not None
                        if row.status not in ("pending", "running"):
                            break
                    await asyncio.sleep(0.05)
        finally:
            await worker.stop()
        titles = await note_titles(system.db)
    assert (row.status, row.stop_reason) == ("success", "completed")
    steps = phase_steps(phases)
    assert all(count == 1 for count in steps.values()), steps
    assert titles == ["lapse/a", "lapse/b", "lapse/c"]
