"""Fixtures of the reliability suite: the API server of tests/api (uvicorn on 127.0.0.1),
an in-process system with the crash model and the slow note tool, and the steps the
lease tests share (a crash-model run, a lapsed lease, a take-over, what was written)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from identity import local_principal
from runtime.runs import Runner, RunRequest
from runtime.settings import Settings
from runtime.system import System, open_system
from store import Database
from store.models import Note, Run, utcnow
from tests.api.conftest import serve
from tests.reliability.crash_worker import SLOW_NOTE

CRASH_MODEL = f"scripted:{Path(__file__).with_name('crash_model.py')}:turn"


@pytest.fixture
def phases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the crash model and the slow note tool log their phases to."""
    path = tmp_path / "phases.log"
    monkeypatch.setenv("RELAYGRAPH_TEST_PHASE_LOG", str(path))
    return path


def read_phases(path: Path) -> str:
    """What has been logged so far ("" before the first line)."""
    return path.read_text() if path.exists() else ""


def phase_steps(path: Path) -> Counter[str]:
    """How often each step was logged ("model-start 0", "tool-start JOB/a"...), any process."""
    return Counter(line.split(" ", 2)[2] for line in read_phases(path).splitlines())


@asynccontextmanager
async def crash_system(data_dir: Path) -> AsyncIterator[System]:
    """A system running the crash model with the slow note tool registered."""
    settings = Settings(data_dir=data_dir, model=CRASH_MODEL)
    async with open_system(settings, extra_tools=[SLOW_NOTE]) as system:
        yield system


def job_request(job: str) -> RunRequest:
    """A run of the local principal whose human message names the crash model's job."""
    return RunRequest(
        principal=local_principal(), input={"messages": [{"type": "human", "content": job}]}
    )


async def expire_lease(db: Database, run_id: str) -> None:
    """Let the run's lease lapse, as when its worker stalls past a renewal."""
    async with db.transaction() as session:
        await session.execute(
            update(Run)
            .where(Run.run_id == run_id)
            .values(lease_expires_at=utcnow() - timedelta(hours=1))
        )


async def take_over(runner: Runner, run_id: str, owner: str) -> None:
    """Let the run's lease lapse and have ``owner`` claim it (the stale owner still runs)."""
    await expire_lease(runner.system.db, run_id)
    assert await runner.claim_batch(owner, 1) == [run_id]


async def note_titles(db: Database) -> list[str]:
    """The titles of every note written so far, sorted."""
    async with db.session() as session:
        return sorted((await session.execute(select(Note.title))).scalars())


__all__ = ["serve"]
