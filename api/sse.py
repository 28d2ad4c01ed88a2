"""Server-sent events for runs: ids for resuming, heartbeats, disconnect handling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from api.errors import ApiError
from runtime.events import EventBus
from runtime.metrics import SSE_CONNECTIONS

HEARTBEAT_SECONDS = 10.0


class StreamSlots:
    """Open SSE streams per (tenant, user) and per tenant, so one caller cannot hold
    every connection of the server."""

    def __init__(self) -> None:
        self._users: Counter[tuple[str, str]] = Counter()
        self._tenants: Counter[str] = Counter()

    def open_streams(self, tenant: str, user: str | None = None) -> int:
        return self._users[(tenant, user)] if user is not None else self._tenants[tenant]

    def reserve(
        self, tenant: str, user: str, *, per_user: int, per_tenant: int
    ) -> Callable[[], None]:
        """Take a slot (0 limits: unlimited); the returned function gives it back (once).

        Raises:
            ApiError: 429 ``too_many_streams`` when a limit is reached.
        """
        if per_user and self._users[(tenant, user)] >= per_user:
            raise _too_many(f"{user!r} already has {per_user} open streams", "MAX_SSE_STREAMS")
        if per_tenant and self._tenants[tenant] >= per_tenant:
            raise _too_many(
                f"tenant {tenant!r} already has {per_tenant} open streams",
                "MAX_SSE_STREAMS_PER_TENANT",
            )
        self._users[(tenant, user)] += 1
        self._tenants[tenant] += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._users[(tenant, user)] -= 1
            self._tenants[tenant] -= 1
            if self._users[(tenant, user)] <= 0:
                del self._users[(tenant, user)]
            if self._tenants[tenant] <= 0:
                del self._tenants[tenant]

        return release


def _too_many(what: str, setting: str) -> ApiError:
    return ApiError(
        429,
        "too_many_streams",
        f"{what} (the limit); close one, or rejoin a run later with Last-Event-ID "
        f"(operators raise RELAYGRAPH_{setting})",
        {"Retry-After": "5"},
    )


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
    release: Callable[[], None] | None = None,
) -> EventSourceResponse:
    """Stream a run's events from ``after`` (a ``Last-Event-ID``) until it ends.

    ``modes`` filters by stream mode (``metadata`` and ``error`` always pass).
    ``on_disconnect`` runs when the client goes away before the run ended,
    ``on_complete`` once the stream delivered the run's last event. ``release`` gives
    back the caller's stream slot when the stream ends (or never starts).
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
            if release is not None:
                release()
            callback = on_complete if finished else on_disconnect
            if callback is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(callback())

    stream = events()
    if release is not None:
        weakref.finalize(stream, release)
    return EventSourceResponse(
        stream,
        headers=headers,
        ping=heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        sep="\n",
    )
