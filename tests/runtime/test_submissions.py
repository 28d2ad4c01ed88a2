"""Run submissions arriving together commit together (runtime.submissions), each caller
getting its own run or its own error, multitask strategies applied in arrival order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from identity import local_principal
from runtime.runs import RunConflict, Runner, RunRequest
from runtime.settings import Settings
from runtime.system import open_system
from store.models import Run, Thread

pytestmark = pytest.mark.usefixtures("backend")
OWNER = local_principal()


@pytest.fixture
async def runner(data_dir: Path) -> AsyncIterator[Runner]:
    async with open_system(Settings(data_dir=data_dir)) as system:
        yield Runner(system)


def _commits(runner: Runner) -> list[int]:
    seen: list[int] = []

    @event.listens_for(runner.system.db.engine.sync_engine, "commit")
    def _committed(conn: Any) -> None:
        seen.append(1)

    return seen


def _request(**fields: Any) -> RunRequest:
    return RunRequest(principal=OWNER, input_text="hello", **fields)


async def _runs(runner: Runner, thread_id: str | None = None) -> list[Run]:
    statement = select(Run).order_by(Run.created_at)
    if thread_id is not None:
        statement = statement.where(Run.thread_id == thread_id)
    async with runner.system.db.session() as session:
        return list((await session.execute(statement)).scalars())


async def test_submissions_arriving_together_share_transactions(runner: Runner) -> None:
    commits = _commits(runner)
    runs = await asyncio.gather(*(runner.submit(_request()) for _ in range(40)))
    assert len({run.run_id for run in runs}) == 40
    assert len(commits) < 40  # alone, each would commit once
    stored = await _runs(runner)
    assert {run.run_id for run in stored} == {run.run_id for run in runs}
    assert all(run.status == "pending" for run in stored)
    async with runner.system.db.session() as session:
        threads = list((await session.execute(select(Thread))).scalars())
    assert {thread.thread_id for thread in threads} == {run.thread_id for run in runs}
    assert all(thread.status == "busy" for thread in threads)


async def test_a_refused_submission_fails_alone(runner: Runner) -> None:
    first = await runner.submit(_request(thread_id="t-busy"))
    others = [runner.submit(_request()) for _ in range(10)]
    refused = runner.submit(_request(thread_id="t-busy", multitask_strategy="reject"))
    results = await asyncio.gather(*others[:5], refused, *others[5:], return_exceptions=True)
    assert isinstance(results[5], RunConflict)
    fine = [result for index, result in enumerate(results) if index != 5]
    assert all(isinstance(result, Run) for result in fine), fine
    assert [run.run_id for run in await _runs(runner, "t-busy")] == [first.run_id]
    assert len(await _runs(runner)) == 11


async def test_same_thread_submissions_apply_strategies_in_order(runner: Runner) -> None:
    await runner.submit(_request(thread_id="t-q"))
    queued = await asyncio.gather(
        *(runner.submit(_request(thread_id="t-q", multitask_strategy="enqueue")) for _ in range(5))
    )
    runs = await _runs(runner, "t-q")
    assert len(runs) == 6 and all(run.status == "pending" for run in runs)
    assert {run.run_id for run in queued} <= {run.run_id for run in runs}
    # Rejecting submissions that arrive together on a busy thread: every one refused.
    outcomes = await asyncio.gather(
        *(runner.submit(_request(thread_id="t-q", multitask_strategy="reject")) for _ in range(4)),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, RunConflict) for outcome in outcomes), outcomes
    # On a new thread, the first of several rejecting submissions wins, the rest are refused.
    rejecting = _request(thread_id="t-new", multitask_strategy="reject")
    outcomes = await asyncio.gather(
        *(runner.submit(rejecting) for _ in range(4)), return_exceptions=True
    )
    won = [outcome for outcome in outcomes if isinstance(outcome, Run)]
    assert len(won) == 1, outcomes
    assert all(isinstance(o, RunConflict) for o in outcomes if not isinstance(o, Run))
    assert [run.run_id for run in await _runs(runner, "t-new")] == [won[0].run_id]


async def test_a_caller_cancelled_before_its_transaction_writes_nothing(runner: Runner) -> None:
    gate = asyncio.Lock()
    runner.submissions.writer = lambda: gate
    await gate.acquire()  # the first transaction waits here with its submission taken
    first = asyncio.create_task(runner.submit(_request(thread_id="t-first")))
    while not runner.submissions._task or not gate._waiters:
        await asyncio.sleep(0.01)
    withdrawn = asyncio.create_task(runner.submit(_request(thread_id="t-withdrawn")))
    while not runner.submissions.waiting:
        await asyncio.sleep(0.01)
    withdrawn.cancel()
    gate.release()
    run = await asyncio.wait_for(first, 10)
    with pytest.raises(asyncio.CancelledError):
        await withdrawn
    assert [stored.run_id for stored in await _runs(runner)] == [run.run_id]
