"""Run-completion webhooks: POST the finished run to the URL given at creation.

Delivery is at-least-once with retries (tenacity); a receiver that keeps failing is
logged and given up on, never blocking the run or the worker.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

log = logging.getLogger(__name__)
ATTEMPTS = 3
TIMEOUT_SECONDS = 10.0


class WebhookError(ValueError):
    pass


def check_webhook_url(url: str) -> str:
    """Raises: WebhookError unless ``url`` is an absolute http(s) URL."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise WebhookError(f"webhook {url!r} must be an absolute http:// or https:// URL")
    return url


async def deliver(url: str, payload: dict[str, Any]) -> bool:
    """POST ``payload`` as JSON; True once the receiver answered 2xx."""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(ATTEMPTS),
                wait=wait_exponential(multiplier=0.5, max=5),
                retry=retry_if_exception_type(httpx.HTTPError),
                reraise=True,
            ):
                with attempt:
                    response = await client.post(url, json=payload)
                    response.raise_for_status()
        return True
    except httpx.HTTPError as exc:
        log.warning("webhook %s failed after %d attempts: %s", url, ATTEMPTS, exc)
        return False
