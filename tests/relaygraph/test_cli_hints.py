"""What the CLI tells a user to do next: commands they can paste as they invoked it, the
valid assistants when one is unknown, and option help (relaygraph/cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from relaygraph.cli import app, invoked_command


def _script(directory: Path) -> Path:
    directory.mkdir(parents=True)
    script = directory / "relaygraph"
    script.write_text("#!/bin/sh\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def test_a_relaygraph_off_path_is_shown_as_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(tmp_path / ".venv" / "bin")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(sys, "argv", [".venv/bin/relaygraph", "demo"])

    assert invoked_command() == ".venv/bin/relaygraph"


def test_the_relaygraph_on_path_is_shown_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _script(tmp_path / "bin")
    monkeypatch.setenv("PATH", str(script.parent))
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])

    assert invoked_command() == "relaygraph"


def test_python_dash_m_and_other_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/x/relaygraph/__main__.py", "demo"])
    assert invoked_command() == f"{sys.executable} -m relaygraph"

    monkeypatch.setattr(sys, "argv", ["/x/bin/pytest"])
    assert invoked_command() == "relaygraph"


def test_the_resume_hints_use_the_invoked_command(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(tmp_path / ".venv" / "bin")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "elsewhere"))
    monkeypatch.setattr(sys, "argv", [".venv/bin/relaygraph"])

    result = CliRunner().invoke(app, ["run", "delete note 1"], catch_exceptions=False)

    assert result.exit_code == 3, result.output
    [approve] = [line for line in result.stdout.splitlines() if "approve:" in line]
    assert approve.split()[1:3] == [".venv/bin/relaygraph", "resume"]
    assert approve.endswith("--approve")  # the whole command on one line


def test_an_unknown_assistant_names_the_valid_ones(data_dir: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "--assistant", "nosuch", "hello", "--json"], catch_exceptions=False
    )

    assert result.exit_code == 2
    assert "there is no assistant 'nosuch'; choose one of: agent, planner, triage" in (
        " ".join(result.stderr.split())
    )
    assert result.stdout == ""  # refused before any run started


def test_worker_concurrency_has_help_text() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"], env={"COLUMNS": "200"})

    assert result.exit_code == 0
    [line] = [line for line in result.stdout.splitlines() if "--concurrency" in line]
    assert "Runs this worker executes at once." in line
