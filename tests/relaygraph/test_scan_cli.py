"""relaygraph/scan_cli.py: `relaygraph scan PATH...|- [--json]` on real files and stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from relaygraph.cli import app

NOTE = (
    "Hej, jeg hedder Søren Jensen.\r\nCPR 010190-1234, mail soren@example.dk.\n"
    "Jeg har sukkersyge.\n"
)


def _scan(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(app, ["scan", *args], input=stdin, catch_exceptions=False)


def _lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    note = tmp_path / "note.txt"
    note.write_bytes(NOTE.encode("utf-8"))
    clean = tmp_path / "clean.md"
    clean.write_text("# Minutes\n\nThe meeting moved to Thursday.\n", "utf-8")
    binary = tmp_path / "photo.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Søren".encode("latin-1"))
    return {"note": note, "clean": clean, "binary": binary, "latin1": latin1}


def test_json_lines_in_input_order_with_character_offsets(
    files: dict[str, Path], data_dir: Path
) -> None:
    result = _scan(str(files["note"]), "-", str(files["clean"]), "--json", stdin="ip 10.0.0.7")
    assert result.exit_code == 0, result.output
    note, stdin, clean = _lines(result)
    assert [note["input"], stdin["input"], clean["input"]] == [
        str(files["note"]),
        "-",
        str(files["clean"]),
    ]
    assert (note["sensitivity"], stdin["sensitivity"], clean["sensitivity"]) == (
        "special",
        "personal",
        "none",
    )
    assert clean["findings"] == []
    for finding in note["findings"]:
        assert {"type", "start", "end", "text"} <= set(finding)
        # Offsets count characters of the file as written (CRLF kept, "ø" is one character).
        assert NOTE[finding["start"] : finding["end"]] == finding["text"]
    assert ("national_id", "010190-1234") in [(f["type"], f["text"]) for f in note["findings"]]
    assert stdin["findings"][0]["type"] == "ip_address"
    # Nothing stored: the data directory stays untouched and no file appears beside the inputs.
    assert not data_dir.exists() or not any(data_dir.iterdir())
    assert sorted(p.name for p in files["note"].parent.iterdir() if p.is_file()) == sorted(
        p.name for p in files.values()
    )


def test_unreadable_inputs_fail_clearly_but_the_others_are_reported(
    files: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.txt"
    args = [str(missing), str(files["note"]), str(files["binary"]), str(tmp_path),
            str(files["latin1"]), str(files["clean"])]  # fmt: skip
    result = _scan(*args, "--json")
    assert result.exit_code == 2
    lines = _lines(result)
    assert [line["input"] for line in lines] == args
    assert [line.get("error") for line in lines] == [
        "not_found",
        None,
        "binary",
        "is_directory",
        "not_text",
        None,
    ]
    assert lines[1]["sensitivity"] == "special"
    assert lines[0]["sensitivity"] is None and lines[0]["findings"] == []
    assert "no such file" in result.stderr
    assert "not UTF-8" in result.stderr


def test_human_output_lists_findings(files: dict[str, Path]) -> None:
    result = _scan(str(files["note"]), str(files["clean"]))
    assert result.exit_code == 0
    out = result.stdout
    assert f"{files['note']}: special (4 findings)" in out
    assert '"010190-1234"' in out and "dk.cpr" in out
    assert f"{files['clean']}: none (0 findings)" in out


def test_scan_without_inputs_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["scan"])
    assert result.exit_code == 2


def test_scan_from_stdin_in_a_real_process() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "relaygraph", "scan", "-", "--json"],
        input="Kontakt: +45 32 12 34 56, DK50 0040 0440 1162 43",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert completed.returncode == 0, completed.stderr
    [line] = [json.loads(x) for x in completed.stdout.splitlines()]
    assert line["input"] == "-"
    assert line["sensitivity"] == "financial"
    assert [f["type"] for f in line["findings"]] == ["phone", "iban"]
