"""In a terminal, `relaygraph run` asks approve / edit / reject at an interrupt."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import call, write_script

REPO = Path(__file__).resolve().parents[2]
TURNS = [
    {"content": "saving", "tool_calls": [call("notes_create", title="keep", body="1")]},
    {"content": "deleting", "tool_calls": [call("notes_delete", note_id=1)]},
    {"content": "finished"},
]


def _read_until(fd: int, needle: bytes, buffer: bytearray, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while needle not in buffer:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{needle!r} not seen in: {bytes(buffer)[-800:]!r}")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                raise AssertionError(
                    f"{needle!r} not seen before exit: {bytes(buffer)!r}"
                ) from None
            buffer.extend(chunk)


@pytest.mark.slow
@pytest.mark.parametrize(("answer", "notes_left"), [(b"approve", 0), (b"reject", 1)])
def test_terminal_user_decides_at_the_interrupt(
    tmp_path: Path, data_dir: Path, answer: bytes, notes_left: int
) -> None:
    env = {
        **os.environ,
        "RELAYGRAPH_DATA_DIR": str(data_dir),
        "RELAYGRAPH_MODEL": write_script(tmp_path / "script.json", TURNS),
        "COLUMNS": "200",
    }
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "relaygraph", "run", "tidy up"],
        cwd=REPO,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    seen = bytearray()
    try:
        _read_until(controller, b"approve / edit / reject", seen)
        assert b"notes_delete" in seen
        os.write(controller, answer + b"\n")
        if answer == b"reject":
            _read_until(controller, b"why", seen)
            os.write(controller, b"keep it\n")
        _read_until(controller, b"finished", seen)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        os.close(controller)
    import sqlite3

    with sqlite3.connect(data_dir / "relaygraph.db") as db:
        assert db.execute("select count(*) from notes").fetchone()[0] == notes_left
