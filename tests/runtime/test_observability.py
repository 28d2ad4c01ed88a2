"""Structured logs (JSON, context, redaction) and the span tree of a run."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import structlog

from runtime.observability import REDACTED, configure_logging
from tests.api.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_log_lines_are_json_with_context_and_no_secrets() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    try:
        with structlog.contextvars.bound_contextvars(tenant="acme", run_id="r-1"):
            structlog.get_logger("test").info(
                "tool called", tool="notes_create", args={"title": "x"}, api_key="rg_abc"
            )
            logging.getLogger("some.library").warning(
                "calling with Authorization: Bearer abcdefghijklmnop for ann@example.com"
            )
    finally:
        configure_logging("WARNING", "json")
    first, second = _lines(stream)
    assert first["event"] == "tool called"
    assert first["tenant"] == "acme" and first["run_id"] == "r-1"
    assert first["tool"] == "notes_create"
    assert first["args"] == REDACTED and first["api_key"] == REDACTED
    assert first["level"] == "info" and "timestamp" in first
    # Records from the standard library get the same context and the same masking.
    assert second["tenant"] == "acme" and second["logger"] == "some.library"
    assert "abcdefghijklmnop" not in str(second["event"])
    assert "ann@example.com" not in str(second["event"])


def test_span_tree_of_one_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.runtime.trace_one_run", str(tmp_path), str(free_port())],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    spans = json.loads(result.stdout.strip().splitlines()[-1])["spans"]
    by_id = {span["span_id"]: span for span in spans}

    def parent(span: dict[str, object]) -> dict[str, object] | None:
        return by_id.get(str(span["parent_id"]))

    [run] = [span for span in spans if span["name"] == "run"]
    request = parent(run)
    assert request is not None and "runs/wait" in str(request["name"])
    assert run["trace_id"] == request["trace_id"]
    assert run["attributes"]["relaygraph.assistant_id"] == "agent"
    assert run["attributes"]["relaygraph.stop_reason"] == "completed"
    nodes = [span for span in spans if str(span["name"]).startswith("node ")]
    assert {span["name"] for span in nodes} >= {"node model", "node act"}
    assert all(parent(span) is run for span in nodes)
    [tool] = [span for span in spans if span["name"] == "tool notes_create"]
    assert str(parent(tool)["name"]) == "node act"  # type: ignore[index]
    assert tool["attributes"]["relaygraph.status"] == "ok"
    models = [span for span in spans if span["name"] == "model call"]
    assert len(models) == 2  # propose the note, then summarise the result
    assert all(str(parent(span)["name"]) == "node model" for span in models)  # type: ignore[index]
