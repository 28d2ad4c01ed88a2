"""Two `relaygraph worker` processes share the queue; one is SIGKILLed mid-run.

The survivor reclaims the dead worker's runs when their leases lapse and resumes them
from their checkpoints: no run is lost, none completes twice, and every side effect
(a note plus its ledger row, committed together) happened exactly once. Runs on SQLite
and, through the ``backend`` fixture, on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from identity import local_principal
from runtime.runs import LEASE_SECONDS, Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.migrate import sync_url

REPO = Path(__file__).resolve().parents[2]
MODEL = f"scripted:{Path(__file__).with_name('crash_model.py')}:turn"
RUNS = 6

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("backend")]


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "relaygraph", "worker", "--concurrency", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _rows(url: str, query: str) -> list[tuple]:  # type: ignore[type-arg]
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(query))]
    finally:
        engine.dispose()


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


async def test_a_killed_worker_loses_no_run_and_repeats_no_side_effect(
    data_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "model.log"
    env = {
        **os.environ,
        "RELAYGRAPH_DATA_DIR": str(data_dir),
        "RELAYGRAPH_MODEL": MODEL,
        "RELAYGRAPH_TEST_MODEL_LOG": str(log),
    }
    settings = Settings(data_dir=data_dir, model=MODEL)
    url = settings.store_url
    async with open_system(settings) as system:  # migrates; the test then only submits
        runner = Runner(system)
        submitted = [
            (await runner.submit(
                RunRequest(
                    principal=local_principal(),
                    input={"messages": [{"type": "human", "content": f"job{i}"}]},
                )
            )).run_id
            for i in range(RUNS)
        ]  # fmt: skip
    victim, survivor = _start_worker(env), _start_worker(env)
    try:

        def victim_is_mid_run() -> bool:
            # A run the victim holds whose side effect committed, now in its last turn.
            held = _rows(
                url,
                "select r.run_id from runs r where r.status = 'running' and "
                f"r.lease_owner like '%:{victim.pid}:%'",
            )
            if not held:
                return False
            lines = log.read_text().splitlines() if log.exists() else []
            return any(line.endswith(f" 1 {victim.pid}") for line in lines)

        _wait(victim_is_mid_run, 60, "the victim to be mid-run after a side effect")
        killed_runs = {
            row[0]
            for row in _rows(
                url,
                f"select run_id from runs where status = 'running' "
                f"and lease_owner like '%:{victim.pid}:%'",
            )
        }
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        assert killed_runs

        def all_ended() -> bool:
            statuses = _rows(url, "select status from runs")
            return all(status not in ("pending", "running") for (status,) in statuses)

        _wait(all_ended, LEASE_SECONDS + 90, "the survivor to finish every run")
        assert survivor.poll() is None, "the surviving worker died"
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)

    runs = _rows(url, "select run_id, status, stop_reason, attempt, thread_id from runs")
    assert sorted(r[0] for r in runs) == sorted(submitted)  # no run lost
    assert {(r[1], r[2]) for r in runs} == {("success", "completed")}
    attempts = {r[0]: r[3] for r in runs}
    assert all(attempts[run_id] == 2 for run_id in killed_runs), attempts
    assert all(attempts[r] == 1 for r in submitted if r not in killed_runs), attempts

    # Exactly-once side effects: one note and one succeeded ledger row per run.
    titles = Counter(title for (title,) in _rows(url, "select title from notes"))
    assert titles == Counter(f"job{i}" for i in range(RUNS))
    ledger = _rows(url, "select thread_id, tool, status from tool_calls")
    assert Counter((tool, status) for _, tool, status in ledger) == {
        ("notes_create", "succeeded"): RUNS
    }
    assert len({thread for thread, _, _ in ledger}) == RUNS

    # Completed once: a killed run's first turn (the side effect) was not executed again,
    # and each run wrote a single ``end`` of its event stream.
    turns = Counter((line.split()[0], line.split()[1]) for line in log.read_text().splitlines())
    assert all(turns[(f"job{i}", "0")] == 1 for i in range(RUNS)), turns
    ends = _rows(url, "select run_id, count(*) from run_events where event = 'end' group by run_id")
    assert sorted(ends) == sorted((run_id, 1) for run_id in submitted)
