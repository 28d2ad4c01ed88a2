"""`relaygraph threads` (relaygraph/threads_cli.py): find a lost THREAD_ID and what an
interrupted thread waits for, on the embedded defaults with the offline demo model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from relaygraph.cli import app


def _thread_of(runner: CliRunner, *args: str, exit_code: int) -> str:
    result = runner.invoke(app, ["run", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == exit_code, result.output
    summary: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    thread_id: str = summary["thread_id"]
    return thread_id


def _listed(runner: CliRunner, *args: str) -> list[dict[str, Any]]:
    result = runner.invoke(app, ["threads", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_threads_lists_idle_and_interrupted_threads_with_what_they_wait_for(
    data_dir: Path,
) -> None:
    runner = CliRunner()
    saved = _thread_of(runner, "remember that the offsite is in March", exit_code=0)
    waiting = _thread_of(runner, "delete the note about offsite", exit_code=3)
    planned = _thread_of(
        runner, "--assistant", "planner", "delete the note about offsite", exit_code=3
    )

    rows = _listed(runner)

    assert [row["thread_id"] for row in rows] == [planned, waiting, saved]  # newest first
    by_id = {row["thread_id"]: row for row in rows}
    assert by_id[saved]["status"] == "idle"
    assert by_id[saved]["pending"] == []
    assert by_id[waiting]["status"] == "interrupted"
    assert by_id[waiting]["assistant_id"] == "agent"
    assert by_id[waiting]["owner"] == "local"
    [action] = by_id[waiting]["pending"]
    assert (action["name"], action["args"]) == ("notes_delete", {"note_id": 1})
    assert "destructive" in action["description"]
    assert by_id[planned]["assistant_id"] == "planner"
    assert [a["name"] for a in by_id[planned]["pending"]] == ["notes_delete"]

    interrupted = _listed(runner, "--status", "interrupted")
    assert {row["thread_id"] for row in interrupted} == {waiting, planned}
    assert [row["thread_id"] for row in _listed(runner, "--limit", "1")] == [planned]
    assert _listed(runner, "--user", "someone-else") == []
    assert len(_listed(runner, "--user", "local")) == 3
    assert _listed(runner, "--tenant", "other") == []

    text = runner.invoke(app, ["threads"], catch_exceptions=False)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    # Whole ids, each on its thread's line, however narrow the terminal (80 columns here).
    line_of = {tid: next(line for line in lines if line.startswith(tid)) for tid in by_id}
    assert "interrupted" in line_of[waiting] and "agent" in line_of[waiting]
    assert "idle" in line_of[saved]
    following = lines[lines.index(line_of[waiting]) + 1]
    assert following.strip() == 'waiting for notes_delete {"note_id": 1}'
    assert "relaygraph resume THREAD --approve" in text.stdout


def test_threads_explains_an_empty_list_and_refuses_an_unknown_status(data_dir: Path) -> None:
    runner = CliRunner()

    empty = runner.invoke(app, ["threads", "--status", "busy"], catch_exceptions=False)
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.strip() == "no busy threads in tenant default"

    wrong = runner.invoke(app, ["threads", "--status", "waiting"], catch_exceptions=False)
    assert wrong.exit_code == 2
    assert "unknown status 'waiting'; choose one of: interrupted, idle, busy, error" in (
        wrong.stderr
    )
