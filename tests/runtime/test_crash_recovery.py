"""A worker is SIGKILLed mid tool call; a new process resumes the thread.

The first call of the killed step had committed (effect + ledger row); the second was
blocked inside its transaction. After resuming: the run completes, the model step
before the kill is not re-run, and every tool effect happened exactly once.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _start(mode: str, thread_id: str, workdir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.crash_worker", mode, thread_id, str(workdir)],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"worker exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["sync", "async"])
def test_sigkill_mid_tool_call_then_resume_acts_exactly_once(
    tmp_path: Path, data_dir: Path, durability: str
) -> None:
    env = {"RELAYGRAPH_DATA_DIR": str(data_dir), "RELAYGRAPH_DURABILITY": durability}
    (tmp_path / "block").write_text("")
    worker = _start("run", "crash-thread", tmp_path, env)
    _wait_for(tmp_path / "blocked", worker)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL

    (tmp_path / "block").unlink()
    resumed = _start("resume", "crash-thread", tmp_path, env)
    out, errors = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, errors
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["status"], summary["stop_reason"], summary["final_message"]) == (
        "success",
        "completed",
        "done",
    )

    model_turns = [
        line.split()[0] for line in (tmp_path / "model_calls.log").read_text().splitlines()
    ]
    assert model_turns == ["0", "1", "2"], "a completed model step ran again"
    with sqlite3.connect(data_dir / "relaygraph.db") as db:
        titles = sorted(row[0] for row in db.execute("select title from notes"))
        ledger = db.execute("select tool, status from tool_calls").fetchall()
        runs = db.execute("select status, error from runs order by created_at").fetchall()
    assert titles == ["first", "second", "third"]
    assert ledger == [("slow_note", "succeeded")] * 3
    assert runs[0][0] == "error" and "died" in runs[0][1]  # marked, not left "running"
    assert runs[1] == ("success", None)
