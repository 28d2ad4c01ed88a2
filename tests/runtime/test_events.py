"""Run events (runtime.events): a live run's buffer holds only what is not yet committed,
and followers joining at any point still see every event once, in order."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.events import EventBus, EventLog
from tests.runtime.test_endings import _running_runs


async def _collect(bus: EventBus, run_id: str, after: int = 0) -> list[int]:
    return [item.seq async for item in bus.follow(run_id, after=after)]


async def _wait_written(bus: EventBus, run_id: str, seq: int) -> None:
    async with asyncio.timeout(10):
        while bus._live[run_id].first_seq < seq:
            await asyncio.sleep(0.05)


async def test_committed_events_leave_the_live_buffer(system: Any) -> None:
    (run,) = await _running_runs(system, 1)
    bus = EventBus(system.db)
    log: EventLog = bus.open_fresh(run.run_id)
    early = asyncio.create_task(_collect(bus, run.run_id))
    for index in range(300):
        await log.add("values", {"messages": ["m"] * index})
    await _wait_written(bus, run.run_id, 300)

    assert bus._live[run.run_id].events == []
    late = asyncio.create_task(_collect(bus, run.run_id))
    resumed = asyncio.create_task(_collect(bus, run.run_id, after=250))
    await asyncio.sleep(0.1)
    for _ in range(5):
        await log.add("updates", {})
    await log.close()

    assert await early == list(range(1, 306))
    assert await late == list(range(1, 306))
    assert await resumed == list(range(251, 306))


async def test_followers_joining_while_events_are_written_miss_nothing(system: Any) -> None:
    (run,) = await _running_runs(system, 1)
    bus = EventBus(system.db)
    log = bus.open_fresh(run.run_id)
    followers: list[asyncio.Task[list[int]]] = []
    for index in range(400):
        await log.add("values", {"n": index})
        if index % 40 == 0:
            followers.append(asyncio.create_task(_collect(bus, run.run_id)))
        if index % 7 == 0:
            await asyncio.sleep(0.03)  # lets the group commit drop part of the buffer
    await log.close()

    seen = await asyncio.gather(*followers)
    assert all(seqs == list(range(1, 401)) for seqs in seen), [len(s) for s in seen]
    assert len(bus._live) == 0


async def test_waiting_for_the_end_reads_no_event(system: Any) -> None:
    (run,) = await _running_runs(system, 1)
    bus = EventBus(system.db)
    log = bus.open_fresh(run.run_id)
    for index in range(50):
        await log.add("values", {"n": index})
    await _wait_written(bus, run.run_id, 50)
    read: list[int] = []
    stored = bus._stored

    async def counting(run_id: str, after: int) -> list[Any]:
        items = await stored(run_id, after)
        read.extend(item.seq for item in items)
        return items

    bus._stored = counting  # type: ignore[method-assign]
    waiting = asyncio.create_task(bus.wait_ended(run.run_id))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    await log.add("end", {})
    await log.close()
    async with asyncio.timeout(10):
        await waiting
    assert read == []
