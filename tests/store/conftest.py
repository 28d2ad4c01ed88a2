"""Fixtures of the migration tests: the database a test migrates on the backend the
``backend`` fixture chose, and a synchronous engine on it for looking at rows and schema."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from store.migrate import sync_url


@pytest.fixture
def url(backend: str, tmp_path: Path) -> str:
    """The database URL: a fresh SQLite file, or the fresh PostgreSQL database of ``backend``."""
    if backend == "postgres":
        return os.environ["RELAYGRAPH_DATABASE_URL"]
    return f"sqlite+aiosqlite:///{tmp_path / 'relaygraph.db'}"


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    """A synchronous engine on ``url``, disposed after the test."""
    engine = create_engine(sync_url(url))
    yield engine
    engine.dispose()
