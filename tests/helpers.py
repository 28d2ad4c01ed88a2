"""Small helpers shared by tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from store.models import Note
from tools import ToolContext

REPO = Path(__file__).resolve().parents[1]


def write_script(path: Path, turns: list[dict[str, Any]]) -> str:
    """Write a scripted-model JSON script and return its model spec."""
    path.write_text(json.dumps(turns), encoding="utf-8")
    return f"scripted:{path}"


def call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args}


# Two notes created, then a delete that needs approval: the run stops interrupted (exit 3).
DELETE_TURNS: list[dict[str, Any]] = [
    {
        "content": "saving",
        "tool_calls": [
            call("notes_create", title="keep", body="1"),
            call("notes_create", title="bin", body="2"),
        ],
    },
    {"content": "deleting", "tool_calls": [call("notes_delete", note_id=2)]},
    {"content": "finished"},
]


def run_relaygraph(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `python -m relaygraph ARGS` in a new process from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "relaygraph", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


def json_lines(output: str) -> list[dict[str, Any]]:
    """The JSON objects of a `--json` output, one per non-blank line."""
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def run_until_interrupted(tmp_path: Path, data_dir: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """`relaygraph run --json` of DELETE_TURNS in a new process, which must stop at the
    delete's approval (exit 3); returns the environment used and the run's summary."""
    env = {
        "RELAYGRAPH_DATA_DIR": str(data_dir),
        "RELAYGRAPH_MODEL": write_script(tmp_path / "script.json", DELETE_TURNS),
    }
    first = run_relaygraph(["run", "tidy up", "--json"], env)
    assert first.returncode == 3, first.stderr
    summary = json_lines(first.stdout)[-1]
    assert summary["status"] == "interrupted"
    return env, summary


async def count_notes(system: Any) -> int:
    async with system.db.session() as session:
        return int((await session.execute(select(func.count()).select_from(Note))).scalar_one())


class NoteTitleInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str


class NoteRef(BaseModel):
    id: int
    title: str


async def add_note(ctx: ToolContext, title: str) -> NoteRef:
    """Add an empty note for the caller in the tool's transaction (flushed, not committed)."""
    note = Note(tenant=ctx.principal.tenant, owner=ctx.principal.user, title=title, body="")
    ctx.session.add(note)
    await ctx.session.flush()
    return NoteRef(id=note.id, title=note.title)
