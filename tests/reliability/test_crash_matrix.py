"""Crash matrix: 100 runs with side-effecting tools, executed by `relaygraph worker`-like
processes that are SIGKILLed at random moments (mid model call, mid tool call, after one
tool of a step committed but before the step's checkpoint) and replaced.

After the last run ended: 100/100 runs completed, every side effect (a note and its
ledger row, committed together) happened exactly once, and every run's SSE stream,
followed through the API across the kills (a fifth of them also disconnecting and
rejoining with Last-Event-ID), delivered each stored event exactly once, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import ApiServer

pytestmark = [pytest.mark.slow, pytest.mark.reliability]

REPO = Path(__file__).resolve().parents[2]
MODEL = f"scripted:{Path(__file__).with_name('crash_model.py')}:turn"
RUNS = 100
WORKERS = 2
CONCURRENCY = 4
KILLS = 12
REJOIN_EVERY = 5
MID_MODEL = "mid model call"
MID_TOOL = "mid tool call"
SIBLING_UNCHECKPOINTED = "mid tool call, sibling committed, step not checkpointed"
BEFORE_CHECKPOINT = "after a tool call or model call, before the checkpoint"


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.crash_worker", str(CONCURRENCY)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db, timeout=30) as connection:
        return list(connection.execute(sql, args))


def _where_killed(phase_log: Path, pid: int) -> list[str]:
    """For each job the killed worker was running, where the kill landed."""
    last: dict[str, list[str]] = {}
    if phase_log.exists():
        for line in phase_log.read_text().splitlines():
            owner, job, *what = line.split()
            if owner == str(pid):
                last.setdefault(job, []).append(" ".join(what))
    landed = []
    for phases in last.values():
        final = phases[-1]
        if final.startswith("model-start 2"):
            continue  # the answer: no side effect left to repeat
        if final.startswith("model-start"):
            landed.append(MID_MODEL)
        elif final.startswith("tool-start"):
            committed_sibling = final.endswith("/b") and any(p.endswith("/a") for p in phases)
            landed.append(SIBLING_UNCHECKPOINTED if committed_sibling else MID_TOOL)
        elif final.startswith(("tool-end", "model-end")):
            landed.append(BEFORE_CHECKPOINT)
    return landed


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def _wait_until_in(phase_log: Path, pid: int, phase: str, timeout: float = 5.0) -> None:
    """Until some job of worker ``pid`` is in ``phase`` (its last line), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last: dict[str, str] = {}
        for line in _lines(phase_log):
            owner, job, what = line.split(" ", 2)
            if owner == str(pid):
                last[job] = what
        if any(
            what.startswith(phase) and not what.endswith(("/a", " 2")) for what in last.values()
        ):
            return
        await asyncio.sleep(0.02)


class _Follower:
    """Follows one run's SSE stream to its end; optionally leaves once and rejoins."""

    def __init__(self, client: httpx.AsyncClient, thread_id: str, run_id: str, rejoin: bool):
        self.client, self.thread_id, self.run_id, self.rejoin = client, thread_id, run_id, rejoin
        self.ids: list[int] = []
        self.rejoined = 0
        self.errors: list[str] = []

    async def follow(self) -> None:
        path = f"/threads/{self.thread_id}/runs/{self.run_id}/stream"
        leave_after = 2 if self.rejoin else None
        while True:
            headers = {"Last-Event-ID": str(self.ids[-1])} if self.ids else {}
            left = False
            async with self.client.stream("GET", path, headers=headers) as response:
                if response.status_code != 200:
                    self.errors.append(f"{response.status_code} {await response.aread()!r}")
                    return
                event: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        continue
                    if line == "":
                        if "id" in event:
                            self.ids.append(int(event["id"]))
                            if event.get("event") == "error":
                                self.errors.append(event.get("data", ""))
                        event = {}
                        if leave_after is not None and len(self.ids) >= leave_after:
                            leave_after = None
                            left = True
                            break
                        continue
                    key, _, value = line.partition(":")
                    event[key] = value.strip()
            if not left:
                return
            self.rejoined += 1


async def test_sigkilled_workers_lose_nothing_and_repeat_nothing(
    serve: Callable[..., ApiServer], tmp_path: Path
) -> None:
    started = time.monotonic()
    server = serve(
        model=MODEL,
        workers=0,
        max_sse_streams=0,
        max_sse_streams_per_tenant=0,
        rate_limit_per_key="",
        rate_limit_per_tenant="",
    )
    db = Path(server.settings.data_dir) / "relaygraph.db"
    phase_log = tmp_path / "phases.log"
    env = {
        **os.environ,
        "RELAYGRAPH_DATA_DIR": str(server.settings.data_dir),
        "RELAYGRAPH_MODEL": MODEL,
        "RELAYGRAPH_TEST_PHASE_LOG": str(phase_log),
        "LANGGRAPH_STRICT_MSGPACK": "true",
    }
    rng = random.Random(20261204)
    workers: list[subprocess.Popen[bytes]] = []
    landed: Counter[str] = Counter()
    kills = 0
    async with httpx.AsyncClient(
        base_url=server.base_url,
        headers=server.headers("alice"),
        timeout=httpx.Timeout(60.0),
        limits=httpx.Limits(max_connections=RUNS + 10),
    ) as client:
        submitted: list[tuple[str, str, str]] = []
        for index in range(RUNS):
            job = f"job{index:03d}"
            thread = (await client.post("/threads", json={})).json()["thread_id"]
            run = await client.post(
                f"/threads/{thread}/runs",
                json={
                    "assistant_id": "agent",
                    "input": {"messages": [{"role": "user", "content": job}]},
                    "stream_mode": ["values", "updates"],
                },
            )
            assert run.status_code == 200, run.text
            submitted.append((job, thread, run.json()["run_id"]))
        followers = [
            _Follower(client, thread, run_id, rejoin=index % REJOIN_EVERY == 0)
            for index, (_, thread, run_id) in enumerate(submitted)
        ]
        following = [asyncio.create_task(f.follow()) for f in followers]
        workers = [_start_worker(env) for _ in range(WORKERS)]
        try:

            def active() -> int:
                unfinished = "select count(*) from runs where status in ('pending', 'running')"
                return int(_query(db, unfinished)[0][0])

            deadline = time.monotonic() + 200
            while active() and time.monotonic() < deadline:
                await asyncio.sleep(rng.uniform(1.0, 3.0))
                if kills >= KILLS:
                    continue
                index = rng.randrange(len(workers))
                victim = workers[index]
                # Aim two kills in three: mid model call, mid tool call; the rest at random.
                aim = ("model-start", "tool-start", None)[kills % 3]
                if aim is not None:
                    await _wait_until_in(phase_log, victim.pid, aim)
                victim.send_signal(signal.SIGKILL)
                victim.wait(timeout=30)
                kills += 1
                landed.update(_where_killed(phase_log, victim.pid))
                workers[index] = _start_worker(env)
            assert active() == 0, "runs left unfinished"
            async with asyncio.timeout(60):
                await asyncio.gather(*following)
        finally:
            for task in following:
                task.cancel()
            for process in workers:
                if process.poll() is None:
                    process.terminate()
            for process in workers:
                process.wait(timeout=30)

    runs = _query(db, "select run_id, status, stop_reason, attempt from runs")
    attempts = Counter(attempt for _, _, _, attempt in runs)
    notes = Counter(title for (title,) in _query(db, "select title from notes"))
    ledger = _query(db, "select thread_id, tool_call_id, status from tool_calls")
    lost, duplicated, rejoins = 0, 0, 0
    short: list[str] = []
    for follower in followers:
        stored = [
            seq
            for (seq,) in _query(
                db,
                "select seq from run_events where run_id = ? and event != 'end' order by seq",
                follower.run_id,
            )
        ]
        lost += len(set(stored) - set(follower.ids))
        duplicated += len(follower.ids) - len(set(follower.ids))
        rejoins += follower.rejoined
        assert follower.errors == [], follower.errors
        assert follower.ids == sorted(follower.ids), "events out of order"
        if follower.ids != stored:
            events = _query(
                db,
                "select seq, event from run_events where run_id = ? order by seq",
                follower.run_id,
            )
            row = _query(
                db, "select status, attempt, error from runs where run_id = ?", follower.run_id
            )
            short.append(f"{follower.run_id} got {follower.ids} of {events}; run {row}")
    elapsed = time.monotonic() - started
    print(
        "\ncrash matrix: "
        + json.dumps(
            {
                "runs": RUNS,
                "completed": sum(1 for _, s, r, _ in runs if (s, r) == ("success", "completed")),
                "kills": kills,
                "kills_landed": dict(landed),
                "attempts": dict(sorted(attempts.items())),
                "side_effects": sum(notes.values()),
                "duplicated_side_effects": sum(n - 1 for n in notes.values() if n > 1),
                "stream_events_lost": lost,
                "stream_events_duplicated": duplicated,
                "rejoins": rejoins,
                "short_streams": short[:3],
                "seconds": round(elapsed, 1),
            }
        )
    )
    assert len(runs) == RUNS
    assert {(status, stop) for _, status, stop, _ in runs} == {("success", "completed")}
    expected = Counter(f"{job}/{part}" for job, _, _ in submitted for part in "abc")
    assert notes == expected, "a side effect was lost or repeated"
    assert Counter(status for _, _, status in ledger) == {"succeeded": 3 * RUNS}
    assert len({(thread, call) for thread, call, _ in ledger}) == 3 * RUNS
    assert lost == 0 and duplicated == 0 and short == [], short
    assert rejoins >= RUNS // REJOIN_EVERY
    assert kills == KILLS and sum(attempts[n] for n in attempts if n > 1) > 0
    assert landed[MID_MODEL] > 0, landed
    assert landed[MID_TOOL] + landed[SIBLING_UNCHECKPOINTED] > 0, landed
    assert landed[SIBLING_UNCHECKPOINTED] + landed[BEFORE_CHECKPOINT] > 0, landed
