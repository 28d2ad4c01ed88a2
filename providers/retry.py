"""Which provider failures are worth another attempt, and how long to wait before it.

Client libraries are built with their own retries off (``max_retries=0``) so the router
decides: transient failures (429, 5xx, timeouts, connection errors) are retried with
exponential backoff and full jitter, honouring ``Retry-After``; every other failure goes
straight to the next deployment.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from google.genai import errors as genai_errors
from langchain_core.exceptions import ModelError

from providers.errors import InvalidModelOutput

TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    """Further attempts on the same deployment after a transient failure."""
    base_seconds: float = 0.5
    max_seconds: float = 20.0
    """Longest wait between attempts, ``Retry-After`` included: a longer ask means the
    deployment is better skipped (fallback) than waited for."""

    def wait_seconds(self, attempt: int, retry_after: float | None) -> float:
        """Wait before attempt ``attempt + 1`` (``attempt`` ≥ 1 failed so far)."""
        if retry_after is not None:
            return min(retry_after, self.max_seconds)
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def status_of(exc: BaseException) -> int | None:
    """The HTTP status behind a provider error (OpenAI, google-genai, httpx), if any."""
    for error in _chain(exc):
        value = getattr(error, "status_code", None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
        if isinstance(error, genai_errors.APIError) and isinstance(error.code, int):
            return error.code
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status
    return None


def retry_after_seconds(exc: BaseException) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) from the error's HTTP response, if any."""
    for error in _chain(exc):
        headers = getattr(getattr(error, "response", None), "headers", None)
        if headers is None:
            continue
        value = headers.get("retry-after-ms")
        if value:
            try:
                return max(float(value) / 1000, 0.0)
            except ValueError:
                pass
        value = headers.get("retry-after")
        if not value:
            continue
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                continue
            return max((when - datetime.now(UTC)).total_seconds(), 0.0)
    return None


def is_transient(exc: BaseException) -> bool:
    """A failure another attempt at the same deployment may fix."""
    if isinstance(exc, InvalidModelOutput):
        return False
    for error in _chain(exc):
        if isinstance(error, ModelError):
            return error.is_retryable
        if isinstance(error, asyncio.TimeoutError | TimeoutError | httpx.TransportError):
            return True
        if type(error).__name__ in ("APIConnectionError", "APITimeoutError"):
            return True
        if type(error).__module__.startswith("aiohttp"):
            return True  # google-genai's async client: a cut connection or stream
    status = status_of(exc)
    return status is not None and status in TRANSIENT_STATUS


def describe(exc: BaseException) -> str:
    """One line for usage rows and error messages: type, status, first line of text."""
    status = status_of(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not text and isinstance(exc, TimeoutError):
        text = "the client library's timeout passed (connecting or waiting for the answer)"
    head = type(exc).__name__ + (f" ({status})" if status else "")
    return f"{head}: {text[:300]}" if text else head


def _chain(exc: BaseException) -> list[Any]:
    seen: list[Any] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
