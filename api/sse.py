"""Server-sent events for runs: ids for resuming, heartbeats, disconnect handling."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from runtime.events import EventBus
from runtime.metrics import SSE_CONNECTIONS

HEARTBEAT_SECONDS = 10.0


def _encode(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))


def run_event_stream(
    bus: EventBus,
    run_id: str,
    *,
    after: int = 0,
    modes: set[str] | None = None,
    headers: dict[str, str] | None = None,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
    on_complete: Callable[[], Awaitable[None]] | None = None,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> EventSourceResponse:
    """Stream a run's events from ``after`` (a ``Last-Event-ID``) until it ends.

    ``modes`` filters by stream mode (``metadata`` and ``error`` always pass).
    ``on_disconnect`` runs when the client goes away before the run ended,
    ``on_complete`` once the stream delivered the run's last event.
    """

    async def events() -> AsyncIterator[ServerSentEvent]:
        finished = False
        SSE_CONNECTIONS.inc()
        try:
            async for item in bus.follow(run_id, after=after):
                if item.event == "end":
                    continue
                mode = item.event.split("|", 1)[0]
                if modes is not None and mode not in modes and mode not in ("metadata", "error"):
                    continue
                yield ServerSentEvent(data=_encode(item.data), event=item.event, id=str(item.seq))
            finished = True
        finally:
            SSE_CONNECTIONS.dec()
            callback = on_complete if finished else on_disconnect
            if callback is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(callback())

    return EventSourceResponse(
        events(),
        headers=headers,
        ping=heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        sep="\n",
    )
