"""Fixtures of the reliability suite: the API server of tests/api (uvicorn on 127.0.0.1),
and an in-process system with the crash model and the slow note tool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from runtime.settings import Settings
from runtime.system import System, open_system
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


@asynccontextmanager
async def crash_system(data_dir: Path) -> AsyncIterator[System]:
    """A system running the crash model with the slow note tool registered."""
    settings = Settings(data_dir=data_dir, model=CRASH_MODEL)
    async with open_system(settings, extra_tools=[SLOW_NOTE]) as system:
        yield system


__all__ = ["serve"]
