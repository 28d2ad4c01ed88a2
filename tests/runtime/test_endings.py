"""Run endings commit together (runtime.endings): statuses, leases, threads and events."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, event, select

from runtime.endings import Ending, Endings
from runtime.events import EventBus
from store.models import Run, RunEvent, Thread, utcnow


async def _running_runs(
    system: Any, count: int, *, thread_of: dict[int, int] | None = None
) -> list[Run]:
    """``count`` running, leased runs (run i on thread ``thread_of.get(i, i)``)."""
    runs = []
    async with system.db.transaction() as session:
        for index in {(thread_of or {}).get(i, i) for i in range(count)}:
            session.add(Thread(thread_id=f"t{index}", tenant="acme", owner="ana", status="busy"))
        await session.flush()
        for i in range(count):
            run = Run(
                run_id=f"r{i}", thread_id=f"t{(thread_of or {}).get(i, i)}", tenant="acme",
                requester="ana", assistant_id="agent", graph_id="agent", graph_version="1",
                status="running", lease_owner="me", lease_expires_at=utcnow(), attempt=1,
            )  # fmt: skip
            session.add(run)
            runs.append(run)
    return runs


def _ending(bus: EventBus, run: Run, **overrides: Any) -> Ending:
    log = bus.open_fresh(run.run_id)
    fields: dict[str, Any] = {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "status": "success",
        "stop_reason": "completed",
        "error": None,
        "thread_status": "idle",
        "interrupted": False,
        "log": log,
    }
    fields.update(overrides)
    return Ending(**fields)


def _count_transactions(system: Any) -> list[str]:
    begun: list[str] = []

    @event.listens_for(system.db.engine.sync_engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        if statement.startswith("BEGIN"):
            begun.append(statement)

    return begun


async def test_runs_ending_together_commit_in_one_transaction(system) -> None:  # type: ignore[no-untyped-def]
    runs = await _running_runs(system, 5)
    bus = EventBus(system.db)
    endings = Endings(system.db, bus)
    items = [_ending(bus, run) for run in runs]
    items[2].interrupted, items[2].thread_status = True, "interrupted"
    for item in items:
        await item.log.add("end", {"run": item.run_id}, flush=False)
    begun = _count_transactions(system)

    busy = await asyncio.gather(*(endings.end(item) for item in items))

    assert busy == [False] * 5
    assert len(begun) == 1, begun
    async with system.db.session() as session:
        rows = {run.run_id: run for run in (await session.execute(select(Run))).scalars()}
        threads = {t.thread_id: t.status for t in (await session.execute(select(Thread))).scalars()}
        events = (await session.execute(select(RunEvent.run_id, RunEvent.event))).all()
    assert {row.status for row in rows.values()} == {"success"}
    assert all(row.lease_owner is None and row.ended_at is not None for row in rows.values())
    assert threads == {"t0": "idle", "t1": "idle", "t2": "interrupted", "t3": "idle", "t4": "idle"}
    assert sorted(events) == [(f"r{i}", "end") for i in range(5)]


async def test_a_gone_run_keeps_no_events_and_a_queued_run_keeps_its_thread_busy(system) -> None:  # type: ignore[no-untyped-def]
    runs = await _running_runs(system, 4, thread_of={3: 0})
    async with system.db.transaction() as session:  # r3 waits behind r0 on thread t0
        row = await session.get(Run, "r3")
        assert row is not None
        row.status, row.lease_owner = "pending", None
        # r1's row is gone (its thread deleted meanwhile): its events cannot be kept.
        await session.execute(delete(Run).where(Run.run_id == "r1"))
    bus = EventBus(system.db)
    endings = Endings(system.db, bus)
    items = [_ending(bus, run) for run in runs[:3]]
    for item in items:
        await item.log.add("end", {"run": item.run_id}, flush=False)

    busy = await asyncio.gather(*(endings.end(item) for item in items))

    assert busy == [True, False, False]
    async with system.db.session() as session:
        statuses = dict((await session.execute(select(Run.run_id, Run.status))).all())
        threads = dict((await session.execute(select(Thread.thread_id, Thread.status))).all())
        events = sorted((await session.execute(select(RunEvent.run_id))).scalars())
    assert statuses == {"r0": "success", "r2": "success", "r3": "pending"}
    assert threads["t0"] == "busy" and threads["t2"] == "idle"
    assert events == ["r0", "r2"]
    assert items[1].log.pending == []


async def test_an_ending_the_store_refuses_fails_alone(system) -> None:  # type: ignore[no-untyped-def]
    runs = await _running_runs(system, 3)
    async with system.db.transaction() as session:  # r1's event 1 is already stored
        session.add(RunEvent(run_id="r1", seq=1, event="values", data={}))
    bus = EventBus(system.db)
    endings = Endings(system.db, bus)
    items = [_ending(bus, run) for run in runs]
    for item in items:
        await item.log.add("end", {"run": item.run_id}, flush=False)  # seq 1 each

    outcomes = await asyncio.gather(*(endings.end(item) for item in items), return_exceptions=True)

    assert outcomes[0] is False and outcomes[2] is False
    assert isinstance(outcomes[1], Exception)
    async with system.db.session() as session:
        statuses = dict((await session.execute(select(Run.run_id, Run.status))).all())
    assert statuses == {"r0": "success", "r1": "running", "r2": "success"}
