"""Run events: written to ``run_events`` by group commit and pushed to live subscribers.

Every event has a per-run sequence number (the SSE ``id``). A subscriber first
reads what the database holds after its ``Last-Event-ID``, then what this process
still buffers, then live events, so a rejoined stream has no gap and no duplicate.
Runs executing in another process are followed through the database: on PostgreSQL
a ``LISTEN/NOTIFY`` wake-up (migration 0012's triggers) says when to re-read it, with a
slow poll as a safety net; on SQLite a shared poller reads it every ``POLL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from store import Database
from store.models import Run, RunEvent, utcnow
from store.notify import EVENTS_CHANNEL, RUNS_CHANNEL

logger = logging.getLogger(__name__)
EVENT_FLUSH_SECONDS = 0.25
POLL_SECONDS = 0.2
NOTIFIED_POLL_SECONDS = 2.0
"""The poll interval where LISTEN/NOTIFY wakes followers (it only covers lost wake-ups)."""
TERMINAL = frozenset({"success", "error", "timeout", "interrupted"})
_PAST_EVERY_EVENT = 2**31 - 1
"""Above any sequence number (the column is a 32-bit integer)."""


@dataclass(frozen=True)
class Event:
    seq: int
    event: str
    data: Any


@dataclass
class _Live:
    first_seq: int = 0
    """Events after this sequence number are all in ``events``; those up to it are in the
    database (the group commit drops what it wrote, so a long run's history is not kept
    in memory for its whole life)."""
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
        self.side_rows: list[tuple[Any, dict[str, Any]]] = []
        """(model, row) of other tables (the run's trace steps) that commit with its events."""
        # Issue 5 (pseudonyms): set by the runner for every agent run, from the run's
        # ``memory.thread_pseudonyms.RunPseudonyms``, to
        # ``memory.restore_stream.StreamRestorer.outgoing``; None records events as given.
        self.restore: Callable[[str, Any], Sequence[tuple[str, Any]]] | None = None

    async def add(self, event: str, data: Any, *, flush: bool = True) -> Event:
        """Number, deliver and queue an event; ``flush=False`` keeps it for the caller's
        own transaction (the final events commit with the run's status)."""
        if self.restore is not None:  # issue 5: restored before it is recorded or sent
            *before, (event, data) = self.restore(event, data)
            for held_event, held_data in before:
                self._record(held_event, held_data)
        item = self._record(event, data)
        if flush:
            self.bus._schedule(self)
        return item

    def _record(self, event: str, data: Any) -> Event:
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
        return item

    def take(self) -> list[dict[str, Any]]:
        batch, self.pending = self.pending, []
        return batch

    def add_rows(self, model: Any, rows: list[dict[str, Any]]) -> None:
        """Queue rows of ``model`` for the next group commit (no transaction of their own)."""
        self.side_rows.extend((model, row) for row in rows)
        self.bus._schedule(self)

    def take_side(self) -> list[tuple[Any, dict[str, Any]]]:
        rows, self.side_rows = self.side_rows, []
        return rows

    def discard(self) -> None:
        """Drop everything pending (the run's row is gone)."""
        self.pending.clear()
        self.side_rows.clear()

    async def flush(self, session: AsyncSession | None = None) -> None:
        """Write this run's pending events now (in ``session``'s transaction if given)."""
        batch = self.take()
        side = self.take_side()
        if not batch and not side:
            return
        if session is not None:
            await _insert_rows(session, batch, side)
        else:
            async with self.bus.db.transaction() as own:
                await _insert_rows(own, batch, side)

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
        self._unlisten: list[Callable[[], None]] = []

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
            # A context of its own: it serves every run, so it must not carry (and log
            # under) the log context of the run that happened to start it.
            self._writer = asyncio.create_task(
                self._write_events(), name="run event writer", context=contextvars.Context()
            )

    async def _write_events(self) -> None:
        """Group commit: every interval, one transaction writes all runs' new events
        (with a thousand runs in flight, one write instead of a thousand)."""
        while self._dirty:
            await asyncio.sleep(EVENT_FLUSH_SECONDS)
            logs, self._dirty = self._dirty, set()
            # Rows are taken under the lock: a run's final transaction (which holds it) then
            # either writes them itself or comes after them, never before.
            await self.write_lock.acquire()
            taken = [(event_log, event_log.take(), event_log.take_side()) for event_log in logs]
            rows = [row for _, batch, _ in taken for row in batch]
            side = [row for _, _, extra in taken for row in extra]
            try:
                if rows or side:
                    async with self.db.transaction() as session:
                        await _insert_rows(session, rows, side)
                for event_log, batch, _ in taken:
                    if batch:
                        self._written(event_log.run_id, batch[-1]["seq"])
            except Exception:  # the store is busy: put them back and try next interval
                logger.exception("writing run events failed; retrying")
                for event_log, batch, extra in taken:
                    event_log.pending[:0] = batch
                    event_log.side_rows[:0] = extra
                    self._dirty.add(event_log)
            finally:
                self.write_lock.release()

    def _written(self, run_id: str, seq: int) -> None:
        """The run's events up to ``seq`` are committed: followers read them from the
        database from now on, so this process stops holding them."""
        live = self._live.get(run_id)
        if live is None or seq <= live.first_seq:
            return
        live.first_seq = seq
        keep = 0
        while keep < len(live.events) and live.events[keep].seq <= seq:
            keep += 1
        del live.events[:keep]

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
            await self._listen()
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

    async def wait_ended(self, run_id: str) -> None:
        """Until the run ends (here or in another process), without reading its events
        (a long run's history would otherwise be loaded from the database just to wait)."""
        async for _ in self.follow(run_id, after=_PAST_EVERY_EVENT):
            pass

    def _wake(self, run_id: str) -> None:
        for news in self._watchers.get(run_id, ()):
            news.set()

    async def _listen(self) -> None:
        """On PostgreSQL, be woken by notifications (waits briefly for the connection so
        that no wake-up between the first read and LISTEN is lost; the poll covers it)."""
        listener = self.db.listener
        if listener is None:
            return
        if not self._unlisten:
            self._unlisten = [
                listener.subscribe(EVENTS_CHANNEL, self._notified),
                listener.subscribe(RUNS_CHANNEL, self._notified),
            ]
        if not listener.connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.connected.wait(), 2.0)

    def _notified(self, payload: str | None) -> None:
        if payload is None:  # reconnected: anything may have happened
            for run_id in list(self._watchers):
                self._wake(run_id)
        else:
            self._wake(payload.split(" ", 1)[0])

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(
                self._poll(), name="run event poller", context=contextvars.Context()
            )

    async def _poll(self) -> None:
        """One query per interval for all followed runs that execute elsewhere."""
        seen: dict[str, tuple[str | None, int]] = {}
        interval = POLL_SECONDS if self.db.listener is None else NOTIFIED_POLL_SECONDS
        while self._watchers:
            await asyncio.sleep(interval)
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
            # Older events are only in the database; the group commit may drop more of
            # the buffer while they are read, so read again until the buffer follows on.
            while last < live.first_seq:
                stored = await self._stored(run_id, last)
                for item in stored:
                    last = item.seq
                    yield item
                if not stored:
                    break
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


async def write_rows(
    session: AsyncSession | AsyncConnection,
    events: list[dict[str, Any]],
    side: list[tuple[Any, dict[str, Any]]],
) -> None:
    """Write taken event rows and side rows in ``session``'s transaction (for callers that
    batch several runs' rows, like ``runtime.endings``)."""
    await _insert_rows(session, events, side)


async def _insert_rows(
    session: AsyncSession | AsyncConnection,
    events: list[dict[str, Any]],
    side: list[tuple[Any, dict[str, Any]]],
) -> None:
    """One executemany per table and set of columns (Core inserts, no RETURNING): the
    events, then the side rows (keyed by the models' attribute names)."""
    if events:
        await session.execute(_table_insert(RunEvent), events)
    by_shape: dict[tuple[Any, tuple[str, ...]], list[dict[str, Any]]] = {}
    for model, row in side:
        by_shape.setdefault((model, tuple(row)), []).append(row)
    for (model, _), rows in by_shape.items():
        columns = _column_keys(model)
        await session.execute(
            _table_insert(model),
            [{columns.get(key, key): value for key, value in row.items()} for row in rows],
        )


@functools.cache
def _table_insert(model: Any) -> Any:
    return insert(model.__table__)


@functools.cache
def _column_keys(model: Any) -> dict[str, str]:
    """A model's attribute names → its table's column keys (``metadata_`` → ``metadata``)."""
    return {
        prop.key: prop.columns[0].key
        for prop in sa_inspect(model).column_attrs
        if prop.key != prop.columns[0].key
    }
