"""Small helpers shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from store.models import Note


def write_script(path: Path, turns: list[dict[str, Any]]) -> str:
    """Write a scripted-model JSON script and return its model spec."""
    path.write_text(json.dumps(turns), encoding="utf-8")
    return f"scripted:{path}"


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


async def count_notes(system: Any) -> int:
    async with system.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Note))).scalar_one())
