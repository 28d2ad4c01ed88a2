"""`relaygraph run --assistant planner|triage` on the embedded defaults, with no model key:
the offline demo model answers their structured-output calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from relaygraph.cli import app


def _summary(output: str) -> dict[str, Any]:
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    summary: dict[str, Any] = lines[-1]
    return summary


def test_planner_and_triage_run_offline(data_dir: Path) -> None:
    runner = CliRunner()
    planned = runner.invoke(
        app,
        ["run", "--assistant", "planner", "find notes about launch", "--json"],
        catch_exceptions=False,
    )
    assert planned.exit_code == 0, planned.output
    summary = _summary(planned.stdout)
    assert summary["status"] == "success"
    assert "[step 1] find notes about launch — done" in summary["final_message"]

    triaged = runner.invoke(
        app,
        ["run", "--assistant", "triage", "The billing page is down, urgent", "--json"],
        catch_exceptions=False,
    )
    assert triaged.exit_code == 3, triaged.output  # waits for approval before writing
    summary = _summary(triaged.stdout)
    [action] = summary["interrupt"]["action_requests"]
    assert action["name"] == "tickets_create"
    assert action["args"]["priority"] == "urgent"
    assert action["args"]["title"] == "The billing page is down, urgent"

    resumed = runner.invoke(
        app, ["resume", summary["thread_id"], "--approve", "--json"], catch_exceptions=False
    )
    assert resumed.exit_code == 0, resumed.output
    final = _summary(resumed.stdout)
    assert final["status"] == "success"
    assert final["final_message"].startswith("Triaged as billing (urgent)")
    assert "tickets_create: done" in final["final_message"]


def test_the_offline_planner_finds_a_saved_note(data_dir: Path) -> None:
    runner = CliRunner()
    saved = runner.invoke(
        app, ["run", "remember that the offsite is in March", "--json"], catch_exceptions=False
    )
    assert saved.exit_code == 0, saved.output

    planned = runner.invoke(
        app,
        ["run", "--assistant", "planner", "find notes about offsite", "--json"],
        catch_exceptions=False,
    )

    assert planned.exit_code == 0, planned.output
    final = _summary(planned.stdout)["final_message"]
    assert "[step 1] find notes about offsite — done: I found 1 note(s)" in final
    assert "the offsite is in March" in final
