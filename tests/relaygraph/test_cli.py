"""The command line: exit codes, --json events, and resuming from a new process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from relaygraph.cli import app
from tests.helpers import call, json_lines, run_relaygraph, run_until_interrupted, write_script


@pytest.fixture
def cli(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def invoke(args: list[str], turns: list[dict[str, Any]] | None = None):  # type: ignore[no-untyped-def]
        if turns is not None:
            monkeypatch.setenv("RELAYGRAPH_MODEL", write_script(tmp_path / "script.json", turns))
        return CliRunner().invoke(app, args, catch_exceptions=False)

    return invoke


def test_run_json_streams_metadata_first_and_summary_last(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(
        ["run", "note it", "--json"],
        [{"tool_calls": [call("notes_create", title="t", body="b")]}, {"content": "ok"}],
    )
    assert result.exit_code == 0, result.output
    lines = json_lines(result.stdout)
    assert lines[0]["event"] == "metadata" and lines[0]["thread_id"] and lines[0]["run_id"]
    assert lines[-1] == {
        "thread_id": lines[0]["thread_id"],
        "run_id": lines[0]["run_id"],
        "status": "success",
        "stop_reason": "completed",
        "interrupt": None,
        "final_message": "ok",
    }
    nodes = [next(iter(line["data"])) for line in lines[1:-1]]
    assert nodes == ["model", "act", "model", "finish"]  # allowed calls skip the gate step


def test_limit_exit_code_and_thread_option(cli) -> None:  # type: ignore[no-untyped-def]
    turns = [{"tool_calls": [call("notes_search", query="x")]}] * 2 + [{"content": "done"}]
    result = cli(["run", "go", "--json", "--thread", "my-thread", "--max-steps", "1"], turns)
    assert result.exit_code == 4
    summary = json_lines(result.stdout)[-1]
    assert (summary["thread_id"], summary["status"], summary["stop_reason"]) == (
        "my-thread",
        "limit",
        "step_limit",
    )
    resumed = cli(["resume", "my-thread", "--json", "--max-steps", "5"])
    assert resumed.exit_code == 0
    assert json_lines(resumed.stdout)[-1]["final_message"] == "done"


@pytest.mark.parametrize(
    ("args", "turns", "message"),
    [
        (["run", "x", "--assistant", "nope"], [], "no assistant 'nope'"),
        (["run", "   "], [], "TEXT is empty"),
        (["resume", "no-such-thread", "--approve"], [], "no thread 'no-such-thread'"),
        (["resume", "t", "--approve", "--reject", "no"], [], "choose one decision"),
        (["resume", "t", "--edit", "{nope"], [], "--edit is not JSON"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(cli, args, turns, message) -> None:  # type: ignore[no-untyped-def]
    result = cli(args, turns)
    assert result.exit_code == 2
    assert message in result.stderr


def test_malformed_script_is_a_clear_error(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.json"
    bad.write_text('{"content": "not a list"}')
    monkeypatch.setenv("RELAYGRAPH_MODEL", f"scripted:{bad}")
    result = cli(["run", "x"])
    assert result.exit_code == 2
    assert "must be a JSON list of turns" in result.stderr


def test_unwritable_data_dir_is_a_clear_error(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RELAYGRAPH_DATA_DIR", str(blocker / "data"))
    result = cli(["run", "x"], [{"content": "hi"}])
    assert result.exit_code == 2
    assert "not writable" in result.stderr and "RELAYGRAPH_DATA_DIR" in result.stderr


def test_tools_json_lists_schema_and_policy(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(["tools", "--json"])
    assert result.exit_code == 0
    tools = {tool["name"]: tool for tool in json.loads(result.stdout)}
    assert set(tools) >= {"notes_create", "notes_search", "notes_delete"}
    assert (
        tools["notes_delete"]["risk"] == "destructive"
        and tools["notes_delete"]["approval"] == "always"
    )
    assert tools["notes_search"]["input_schema"]["properties"]["query"]["type"] == "string"
    assert set(tools["notes_create"]) == {
        "name",
        "description",
        "risk",
        "scope",
        "approval",
        "input_schema",
    }


def test_demo_runs_offline_and_ends_at_an_approval(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli(["demo"])
    assert result.exit_code == 0, result.output
    assert "Saved note 1" in result.stdout
    assert "waiting for a reviewer" in result.stdout and "--approve" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "notes_left", "last_tool_status"),
    [
        (["--approve"], ["keep"], "success"),
        (["--reject", "keep both"], ["keep", "bin"], "error"),
        (["--edit", '{"args": {"note_id": 1}}'], ["bin"], "success"),
    ],
)
def test_interrupt_then_resume_from_a_new_process(
    tmp_path: Path, data_dir: Path, flags: list[str], notes_left: list[str], last_tool_status: str
) -> None:
    env, summary = run_until_interrupted(tmp_path, data_dir)
    assert summary["stop_reason"] == "waiting_for_human"
    assert summary["interrupt"]["action_requests"][0]["args"] == {"note_id": 2}

    second = run_relaygraph(["resume", summary["thread_id"], "--json", *flags], env)
    assert second.returncode == 0, second.stderr
    final = json_lines(second.stdout)
    assert final[-1]["status"] == "success" and final[-1]["final_message"] == "finished"
    act = [
        line["data"]["act"]
        for line in final
        if line.get("event") == "updates" and "act" in line["data"]
    ]
    gate = [
        line["data"]["gate"]
        for line in final
        if line.get("event") == "updates" and "gate" in line["data"]
    ]
    statuses = [m["status"] for m in (act[0]["messages"] if act else gate[0]["messages"])]
    assert statuses == [last_tool_status]

    import sqlite3

    with sqlite3.connect(data_dir / "relaygraph.db") as connection:
        titles = sorted(row[0] for row in connection.execute("select title from notes"))
        runs = connection.execute(
            "select status, stop_reason from runs order by created_at"
        ).fetchall()
    assert titles == sorted(notes_left)
    assert runs == [("success", "waiting_for_human"), ("success", "completed")]
