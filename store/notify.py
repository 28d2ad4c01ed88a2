"""Cross-process wake-ups through PostgreSQL ``LISTEN/NOTIFY``.

Migration 0012's triggers notify ``relaygraph_runs`` (a run was inserted, or its status or
cancel request changed) and ``relaygraph_events`` (a run's events were inserted). One
``Listener`` per process holds one dedicated connection and calls its subscribers'
callbacks. A notification is only a hint to re-read the tables: after a reconnect every
callback is called with ``None`` ("you may have missed something; look again").
SQLite has no equivalent, so there callers poll (``Database.listener`` is ``None``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

RUNS_CHANNEL = "relaygraph_runs"
EVENTS_CHANNEL = "relaygraph_events"
CHANNELS = (RUNS_CHANNEL, EVENTS_CHANNEL)
RECONNECT_SECONDS = 1.0

Callback = Callable[[str | None], None]


class Listener:
    """One LISTEN connection for the process, started by the first subscriber."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._callbacks: dict[str, set[Callback]] = {channel: set() for channel in CHANNELS}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        """Call ``callback(payload)`` for each notification on ``channel``; returns the
        function that unsubscribes. Must be called from a running event loop."""
        self._callbacks[channel].add(callback)
        if self._task is None or self._task.done():
            self.connected = asyncio.Event()
            self._task = asyncio.create_task(self._listen(), name="postgres listener")
        return lambda: self._callbacks[channel].discard(callback)

    async def _listen(self) -> None:
        from psycopg import AsyncConnection

        first = True
        while True:
            try:
                async with await AsyncConnection.connect(self.conninfo, autocommit=True) as conn:
                    for channel in CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    self.connected.set()
                    if not first:
                        self._dispatch_all(None)
                    first = False
                    async for note in conn.notifies():
                        for callback in list(self._callbacks.get(note.channel, ())):
                            callback(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server restarted or the network broke: retry
                log.warning("LISTEN connection lost (%s); reconnecting", exc)
                self.connected.clear()
                first = False
                await asyncio.sleep(RECONNECT_SECONDS)

    def _dispatch_all(self, payload: str | None) -> None:
        for callbacks in self._callbacks.values():
            for callback in list(callbacks):
                callback(payload)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def parse_run_notification(payload: str) -> tuple[str, str, str | None, str | None]:
    """``(run_id, status, cancel_requested, lease_owner)`` of a ``relaygraph_runs`` payload."""
    run_id, status, cancel, owner = [*payload.split(" ", 3), "-", "-", "-"][:4]
    return run_id, status, None if cancel == "-" else cancel, None if owner == "-" else owner
