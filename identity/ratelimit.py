"""Request rate limits per credential and per tenant (sliding window counter, ``limits``).

The async API (``limits.aio``) is used: its ``MemoryStorage`` counts a hit with no
``await`` between reading and writing the count, so concurrent requests cannot both take
the last slot, and it needs no timer thread. The sliding window counter (the previous
fixed window's count, weighted by how much of it still overlaps the window, plus the
current one's) keeps two counters per key: a moving window kept one entry per hit (600
for a tenant at 600/minute), inserted at the front of a list on every request, and its
expiry moved to a worker thread after every hit (~0.25 ms of CPU per request here).
A shared storage (``redis://...``, or ``postgresql+psycopg://...`` through
``store.rate_counters``, fixed windows) makes the limits hold across processes.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse_many
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import FixedWindowRateLimiter, SlidingWindowCounterRateLimiter
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


_SECRET_PARAM = re.compile(r"(?i)((?:password|passwd|pwd|secret|token)=)([^&;#]*)")


def redact_uri(uri: str) -> tuple[str, list[str]]:
    """``uri`` fit to show: the user info's password (all of it when it has no user name,
    as in ``redis://token@host``) and ``password=``-like query values become ``***``.
    Also returns the secrets removed, so that other text quoting them can be scrubbed."""
    secrets: list[str] = []
    scheme, separator, rest = uri.partition("://")
    if separator and "@" in rest:
        # Hosts never hold "@": all before the last one is user info (over-redacting a
        # path or query "@" is the safe mistake).
        userinfo, _, hosts = rest.rpartition("@")
        user, colon, password = userinfo.partition(":")
        secret = password if colon else user
        if secret:
            secrets.append(secret)
        shown = f"{user}:***" if colon else "***"
        uri = f"{scheme}://{shown}@{hosts}"

    def hide(match: re.Match[str]) -> str:
        if match.group(2):
            secrets.append(match.group(2))
        return f"{match.group(1)}***"

    return _SECRET_PARAM.sub(hide, uri), secrets


def _scrub(text: str, raw: list[str], redacted: str, secrets: list[str]) -> str:
    for form in raw:
        text = text.replace(form, redacted)
    for secret in secrets:
        if len(secret) >= 4:  # shorter ones would garble the text (and guard nothing)
            text = text.replace(secret, "***")
    return text


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
        given = storage_uri
        if not storage_uri.startswith("async+"):
            storage_uri = f"async+{storage_uri}"
        postgres = storage_uri.startswith(("async+postgresql", "async+postgres:"))
        if postgres:  # ours: limits has no PostgreSQL storage (issue 10)
            import store.rate_counters  # noqa: F401  (registers the schemes)
        try:
            storage = storage_from_string(storage_uri)
            if not isinstance(storage, AsyncStorage):
                raise TypeError("not an async storage")
            # PostgreSQL (store.rate_counters) counts fixed windows only.
            self._limiter: SlidingWindowCounterRateLimiter | FixedWindowRateLimiter = (
                FixedWindowRateLimiter(storage)
                if postgres
                else SlidingWindowCounterRateLimiter(storage)
            )
        except Exception as exc:
            # The URI may carry a password (redis://:secret@host): never show it, neither
            # in the message nor in the storage's own error quoting the URI.
            shown, secrets = redact_uri(given)
            reason = _scrub(f"{type(exc).__name__}: {exc}", [storage_uri, given], shown, secrets)
            raise RateLimitConfigError(
                f"RELAYGRAPH_RATE_LIMIT_STORAGE_URI {shown!r} cannot be used ({reason}); "
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
