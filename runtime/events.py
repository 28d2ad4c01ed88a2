"""Run events: written to ``run_events`` by group commit and pushed to live subscribers.

Every event has a per-run sequence number (the SSE ``id``). A subscriber first
reads what the database holds after its ``Last-Event-ID``, then what this process
still buffers, then live events, so a rejoined stream has no gap and no duplicate.
Runs executing in another process are followed by polling the database.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from store import Database
from store.models import Run, RunEvent, utcnow

logger = logging.getLogger(__name__)
EVENT_FLUSH_SECONDS = 0.25
POLL_SECONDS = 0.2
TERMINAL = frozenset({"success", "error", "timeout", "interrupted"})


@dataclass(frozen=True)
class Event:
    seq: int
    event: str
    data: Any


@dataclass
class _Live:
    first_seq: int = 0
    """Events after this sequence number are all in ``events``."""
    events: list[Event] = field(default_factory=list)
    subscribers: set[asyncio.Queue[Event | None]] = field(default_factory=set)
    done: bool = False
    ended: bool = False


class EventLog:
    """One run's event writer: numbering and live delivery. Rows are written by the
    bus's group commit (one transaction for every run's new events per interval), or
    with the run's final status by ``flush(session)``."""

    def __init__(self, bus: EventBus, run_id: str, first_seq: int = 0) -> None:
        self.bus = bus
        self.run_id = run_id
        self.seq = first_seq
        self.pending: list[dict[str, Any]] = []

    async def add(self, event: str, data: Any, *, flush: bool = True) -> Event:
        """Number, deliver and queue an event; ``flush=False`` keeps it for the caller's
        own transaction (the final events commit with the run's status)."""
        self.seq += 1
        item = Event(self.seq, event, data)
        self.pending.append(
            {
                "run_id": self.run_id,
                "seq": item.seq,
                "event": event,
                "data": data,
                "created_at": utcnow(),
            }
        )
        self.bus._deliver(self.run_id, item)
        if flush:
            self.bus._schedule(self)
        return item

    def take(self) -> list[dict[str, Any]]:
        batch, self.pending = self.pending, []
        return batch

    async def flush(self, session: AsyncSession | None = None) -> None:
        """Write this run's pending events now (in ``session``'s transaction if given)."""
        batch = self.take()
        if not batch:
            return
        if session is not None:
            await session.execute(insert(RunEvent), batch)  # one executemany, no RETURNING
        else:
            async with self.bus.db.transaction() as own:
                await own.execute(insert(RunEvent), batch)

    async def close(self, *, ended: bool = True) -> None:
        """Flush what is left and tell subscribers this process is done with the run:
        it ``ended``, or it was handed back to the queue to continue elsewhere."""
        await self.flush()
        self.bus._finish(self.run_id, ended=ended)


class EventBus:
    """Live delivery of run events within this process, backed by the database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._live: dict[str, _Live] = {}
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._dirty: set[EventLog] = set()
        self.write_lock = asyncio.Lock()
        """Held while events are written: a run's final transaction takes it too, so no
        earlier event of the run can commit after the run is seen to have ended."""
        self._writer: asyncio.Task[None] | None = None
        self._poller: asyncio.Task[None] | None = None

    def open_fresh(self, run_id: str) -> EventLog:
        """Start the event log of a run that has never executed (it has no events yet)."""
        self._live[run_id] = _Live(first_seq=0)
        self._wake(run_id)
        return EventLog(self, run_id, first_seq=0)

    async def open(self, run_id: str, *, fresh: bool = False) -> EventLog:
        """Start (or, for a reclaimed run, continue) a run's event log."""
        if fresh:
            return self.open_fresh(run_id)
        async with self.db.session() as session:
            last = (
                await session.execute(
                    select(RunEvent.seq)
                    .where(RunEvent.run_id == run_id)
                    .order_by(RunEvent.seq.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
        self._live[run_id] = _Live(first_seq=last or 0)
        self._wake(run_id)
        return EventLog(self, run_id, first_seq=last or 0)

    def _schedule(self, log: EventLog) -> None:
        self._dirty.add(log)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_events(), name="run event writer")

    async def _write_events(self) -> None:
        """Group commit: every interval, one transaction writes all runs' new events
        (with a thousand runs in flight, one write instead of a thousand)."""
        while self._dirty:
            await asyncio.sleep(EVENT_FLUSH_SECONDS)
            logs, self._dirty = self._dirty, set()
            taken = [(event_log, event_log.take()) for event_log in logs]
            rows = [row for _, batch in taken for row in batch]
            if not rows:
                continue
            try:
                async with self.write_lock, self.db.transaction() as session:
                    await session.execute(insert(RunEvent), rows)
            except Exception:  # the store is busy: put them back and try next interval
                logger.exception("writing run events failed; retrying")
                for event_log, batch in taken:
                    event_log.pending[:0] = batch
                    self._dirty.add(event_log)

    def _deliver(self, run_id: str, item: Event) -> None:
        live = self._live.get(run_id)
        if live is None:
            return
        live.events.append(item)
        for queue in live.subscribers:
            queue.put_nowait(item)

    def _finish(self, run_id: str, *, ended: bool) -> None:
        live = self._live.pop(run_id, None)
        if live is None:
            return
        live.done = True
        live.ended = ended
        for queue in live.subscribers:
            queue.put_nowait(None)

    def is_live(self, run_id: str) -> bool:
        return run_id in self._live

    async def follow(self, run_id: str, after: int = 0) -> AsyncIterator[Event]:
        """Every event of the run with ``seq > after``, in order, until the run ends."""
        last = after
        while True:
            live = self._live.get(run_id)
            if live is not None:
                async for item in self._follow_live(run_id, live, last):
                    last = item.seq
                    yield item
                if live.ended:
                    return
                # Handed back to the queue: follow it wherever it continues.
            # Not executing here (yet): one shared poller watches every such run, and
            # wakes this follower when the run starts here, gains events or ends.
            news = asyncio.Event()
            self._watchers.setdefault(run_id, set()).add(news)
            self._ensure_poller()
            try:
                if run_id in self._live:
                    continue
                finished = await self._finished(run_id)
                for item in await self._stored(run_id, last):
                    last = item.seq
                    yield item
                if finished:
                    return
                if run_id not in self._live:
                    await news.wait()
            finally:
                watchers = self._watchers.get(run_id)
                if watchers is not None:
                    watchers.discard(news)
                    if not watchers:
                        del self._watchers[run_id]

    def _wake(self, run_id: str) -> None:
        for news in self._watchers.get(run_id, ()):
            news.set()

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="run event poller")

    async def _poll(self) -> None:
        """One query per interval for all followed runs that execute elsewhere."""
        seen: dict[str, tuple[str | None, int]] = {}
        while self._watchers:
            await asyncio.sleep(POLL_SECONDS)
            ids = [run_id for run_id in self._watchers if run_id not in self._live]
            if not ids:
                continue
            try:
                async with self.db.session() as session:
                    statuses = dict(
                        (
                            await session.execute(
                                select(Run.run_id, Run.status).where(Run.run_id.in_(ids))
                            )
                        ).all()
                    )
                    latest = dict(
                        (
                            await session.execute(
                                select(RunEvent.run_id, func.max(RunEvent.seq))
                                .where(RunEvent.run_id.in_(ids))
                                .group_by(RunEvent.run_id)
                            )
                        ).all()
                    )
            except Exception:  # a busy or unreachable store: try again next interval
                continue
            for run_id in ids:
                state = (statuses.get(run_id), latest.get(run_id) or 0)
                if seen.get(run_id) != state or state[0] is None or state[0] in TERMINAL:
                    seen[run_id] = state
                    self._wake(run_id)
        self._poller = None

    async def _follow_live(self, run_id: str, live: _Live, after: int) -> AsyncIterator[Event]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        live.subscribers.add(queue)
        try:
            last = after
            if after < live.first_seq:  # older events are only in the database
                for item in await self._stored(run_id, last):
                    last = item.seq
                    yield item
            for item in list(live.events):
                if item.seq > last:
                    last = item.seq
                    yield item
            if live.done:
                return
            while (received := await queue.get()) is not None:
                if received.seq > last:
                    last = received.seq
                    yield received
        finally:
            live.subscribers.discard(queue)

    async def _stored(self, run_id: str, after: int) -> list[Event]:
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(RunEvent)
                    .where(RunEvent.run_id == run_id, RunEvent.seq > after)
                    .order_by(RunEvent.seq)
                )
            ).scalars()
            return [Event(row.seq, row.event, row.data) for row in rows]

    async def _finished(self, run_id: str) -> bool:
        async with self.db.session() as session:
            status = (
                await session.execute(select(Run.status).where(Run.run_id == run_id))
            ).scalar_one_or_none()
        return status is None or status in TERMINAL
