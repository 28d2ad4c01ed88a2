"""Reply and fault scripting shared by the provider stubs (OpenAI- and Gemini-compatible).

A stub queues what its next requests get: a reply (``reply(...)``, in the provider's own
shape) or an error (``fail(...)``); each request records itself and takes the next item.
This module holds what does not depend on the provider: the queue and its lock, failures
with ``Retry-After``, the slow first byte (``delay``), the "nothing queued" error, and the
broken streams of fault injection. A stub supplies its reply type, its error format
(``error_response``) and its wire format.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.responses import Response

from tests.stubs.server import LocalServer

Fault = Literal["malformed", "drop_before", "drop_after"]
"""Fault injection: ``malformed`` answers with a body that is not JSON (SSE: a broken
event); ``drop_before`` ends a stream before its first token, ``drop_after`` right after
it (both without an end marker, as a dropped connection looks to the client)."""


@dataclass(frozen=True)
class ReplyBehaviour:
    """What every scripted reply may add to its content, whatever the provider."""

    delay: float = 0.0
    """Seconds before the first byte (a slow provider; beyond the client timeout: a timeout)."""
    fault: Fault | None = None
    citations: list[dict[str, str]] = field(default_factory=list)
    """``{"url", "title", "cited"}`` (``cited``: a substring of the text): web-search
    citations in the provider's shape, with ``search_query`` as the query it ran."""
    search_query: str = "stub search"


@dataclass(frozen=True)
class ScriptedFailure:
    """An error response; ``type`` and ``code`` are used by formats that carry them."""

    status: int = 500
    message: str = "stub: scripted failure"
    type: str = "server_error"
    code: str | None = None
    retry_after: float | None = None


class ScriptedStub(LocalServer):
    """A local server that answers requests from a queue of scripted replies and failures.

    Subclasses implement ``error_response`` and ``clear_records`` and queue their replies
    with ``enqueue``; handlers call ``next_reply``.
    """

    def __init__(self) -> None:
        self._queue: deque[Any] = deque()
        self._lock = threading.Lock()
        super().__init__()

    def error_response(
        self, status: int, message: str, *, type: str = "server_error", code: str | None = None
    ) -> Response:
        """An error in the provider's format."""
        raise NotImplementedError

    def clear_records(self) -> None:
        """Forget recorded requests (called under the lock by ``reset``)."""

    # --- scripting ------------------------------------------------------------------

    def enqueue(self, item: Any) -> None:
        with self._lock:
            self._queue.append(item)

    def fail(
        self,
        status: int = 500,
        message: str | None = None,
        *,
        type: str = "server_error",
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Queue an error response in the provider's format (with ``Retry-After`` if
        given; ``type`` and ``code`` where the format has them)."""
        text = message or f"{self.name}: scripted failure"
        self.enqueue(ScriptedFailure(status, text, type, code, retry_after))

    def reset(self) -> None:
        """Forget queued replies and recorded requests (for a stub shared between tests)."""
        with self._lock:
            self._queue.clear()
            self.clear_records()

    @property
    def pending(self) -> int:
        """How many queued replies have not been served yet."""
        with self._lock:
            return len(self._queue)

    # --- serving --------------------------------------------------------------------

    async def next_reply(self, record: Callable[[], int]) -> tuple[int, Any, Response | None]:
        """Record the request (``record`` runs under the lock and returns its number) and
        take the next scripted item: ``(number, reply, None)``, after the reply's
        ``delay``; or ``(number, None, response)`` for a failure or an empty queue."""
        with self._lock:
            number = record()
            scripted = self._queue.popleft() if self._queue else None
        if scripted is None:
            return (
                number,
                None,
                self.error_response(
                    500,
                    f"{self.name}: no scripted reply left for request {number}; "
                    "queue one with stub.reply(...) or stub.fail(...)",
                    code="stub_queue_empty",
                ),
            )
        if isinstance(scripted, ScriptedFailure):
            response = self.error_response(
                scripted.status, scripted.message, type=scripted.type, code=scripted.code
            )
            if scripted.retry_after is not None:
                response.headers["retry-after"] = f"{scripted.retry_after:g}"
            return number, None, response
        delay = float(getattr(scripted, "delay", 0.0) or 0.0)
        if delay:
            await asyncio.sleep(delay)
        return number, scripted, None


async def broken_stream(sent: Iterable[str], name: str) -> AsyncIterator[str]:
    """Send ``sent``, then cut the connection by raising, as a crashed upstream would."""
    for line in sent:
        yield line
    await asyncio.sleep(0.01)
    raise ConnectionResetError(f"{name}: stream dropped (fault injection)")


async def lines(sent: Iterable[str]) -> AsyncIterator[str]:
    """Send ``sent`` and end normally (a malformed stream that still completes)."""
    for line in sent:
        yield line
