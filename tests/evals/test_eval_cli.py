"""``relaygraph eval`` in-process: listing, reports, and the regression gate failing on a
deliberately worse configuration (the malformed-tool-call model against the oracle's
baseline)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from relaygraph.cli import app

TINY = str(Path(__file__).with_name("tiny.yaml"))


def test_list_names_the_shipped_suites(data_dir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "--list"])
    assert result.exit_code == 0, result.output
    for name in ("tool_use", "planning", "memory", "document_qa", "injection", "structured_output"):
        assert name in result.output


def test_unknown_suite_is_bad_input(data_dir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", "nope", "--model", "oracle"])
    assert result.exit_code == 2
    assert "shipped suites" in result.output


def test_scripted_judge_is_refused(data_dir: Path) -> None:
    result = CliRunner().invoke(app, ["eval", TINY, "--judge", "scripted:evals.models:oracle"])
    assert result.exit_code == 2 and "real provider" in result.output


def test_gate_passes_on_itself_and_fails_on_a_worse_model(data_dir: Path, tmp_path: Path) -> None:
    baseline, report, page = tmp_path / "base.json", tmp_path / "r.json", tmp_path / "r.html"
    first = CliRunner().invoke(
        app, ["eval", TINY, "--model", "oracle", "--save-baseline", str(baseline)]
    )
    assert first.exit_code == 0, first.output
    saved = json.loads(baseline.read_text())
    assert saved["suites"]["tiny"]["pass@1"] == 1.0 and "cases" not in saved

    again = CliRunner().invoke(
        app, ["eval", TINY, "--model", "oracle", "--baseline", str(baseline)]
    )
    assert again.exit_code == 0, again.output

    worse = CliRunner().invoke(
        app,
        [
            "eval", TINY, "--model", "malformed", "--baseline", str(baseline),
            "--out", str(report), "--html", str(page),
        ],
    )  # fmt: skip
    assert worse.exit_code == 1, worse.output
    assert "regression: tiny pass@1" in worse.output
    written = json.loads(report.read_text())
    assert written["suites"]["tiny"]["pass@1"] < 1.0
    assert any(not case["passed"] for case in written["cases"])
    assert "<svg" in page.read_text()
