"""Request rate limits per credential and per tenant (moving window, ``limits`` library).

The async API (``limits.aio``) is used: its ``MemoryStorage`` takes a per-key
``asyncio.Lock`` and counts and records a hit with no ``await`` in between, so
concurrent requests cannot both take the last slot, and it needs no timer thread.
A shared storage (``redis://...``, or ``postgresql+psycopg://...`` through
``store.rate_counters``, fixed windows) makes the limits hold across processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from limits.storage import storage_from_string

from identity.types import Principal


class RateLimitConfigError(ValueError):
    """A rate limit or storage setting cannot be parsed; the message shows the format."""


@dataclass(frozen=True)
class RateDecision:
    """Whether a request may proceed; when not, which limit stopped it and when to retry
    (the API answers 429 with ``Retry-After: retry_after_seconds``)."""

    allowed: bool
    retry_after_seconds: int = 0
    scope: str | None = None  # "key" or "tenant" when refused
    limit: str | None = None  # e.g. "120 per 1 minute" when refused

    @property
    def message(self) -> str:
        if self.allowed:
            return "allowed"
        return (
            f"rate limit of {self.limit} per {self.scope} exceeded; "
            f"retry in {self.retry_after_seconds} s"
        )


def _parse(setting: str, value: str | None) -> list[RateLimitItem]:
    if value is None or not value.strip():
        return []
    try:
        return parse_many(value)
    except ValueError:
        raise RateLimitConfigError(
            f"{setting} {value!r} is not a rate limit; write e.g. '120/minute' or "
            "'10/second;600/hour' (empty disables it)"
        ) from None


class RateLimiter:
    """Limits per credential (an API key id, else the user) and per tenant."""

    def __init__(
        self,
        *,
        per_key: str | None = "120/minute",
        per_tenant: str | None = "600/minute",
        storage_uri: str = "memory://",
    ) -> None:
        """Parse the limits and open the storage.

        Raises:
            RateLimitConfigError: a limit or the storage URI is malformed.
        """
        # Named as people set them: runtime.settings reads these variables.
        self.per_key = _parse("RELAYGRAPH_RATE_LIMIT_PER_KEY", per_key)
        self.per_tenant = _parse("RELAYGRAPH_RATE_LIMIT_PER_TENANT", per_tenant)
        if not storage_uri.startswith("async+"):
            storage_uri = f"async+{storage_uri}"
        postgres = storage_uri.startswith(("async+postgresql", "async+postgres:"))
        if postgres:  # ours: limits has no PostgreSQL storage (issue 10)
            import store.rate_counters  # noqa: F401  (registers the schemes)
        try:
            storage = storage_from_string(storage_uri)
            if not isinstance(storage, AsyncStorage):
                raise TypeError("not an async storage")
            # A moving window needs a per-hit log; PostgreSQL counts fixed windows.
            self._limiter: MovingWindowRateLimiter | FixedWindowRateLimiter = (
                FixedWindowRateLimiter(storage) if postgres else MovingWindowRateLimiter(storage)
            )
        except Exception as exc:
            raise RateLimitConfigError(
                f"RELAYGRAPH_RATE_LIMIT_STORAGE_URI {storage_uri!r} cannot be used ({exc!r}); "
                "use e.g. "
                "'memory://', 'redis://host:6379' or 'postgresql+psycopg://…'"
            ) from None

    async def check(self, principal: Principal, key_id: str | None) -> RateDecision:
        """Count one request by ``principal`` (through API key ``key_id``, or None for
        other credentials) and decide whether it may proceed.

        The credential's limits are checked first, so a credential over its own limit
        does not use up its tenant's allowance; a request refused by the tenant limit
        still counts against its credential.
        """
        credential = f"key:{key_id}" if key_id else f"user:{principal.tenant}:{principal.user}"
        checks = [("key", item, credential) for item in self.per_key] + [
            ("tenant", item, f"tenant:{principal.tenant}") for item in self.per_tenant
        ]
        for scope, item, identifier in checks:
            if not await self._limiter.hit(item, identifier):
                stats = await self._limiter.get_window_stats(item, identifier)
                wait = max(1, math.ceil(stats.reset_time - time.time()))
                return RateDecision(
                    allowed=False,
                    retry_after_seconds=wait,
                    scope=scope,
                    limit=repr(item),
                )
        return RateDecision(allowed=True)
