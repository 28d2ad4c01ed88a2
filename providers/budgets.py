"""Spend limits per user and per tenant per day and month, checked before each call.

Before a call the router asks whether the estimated cost still fits; after the call the
actual cost is added. Totals come from the usage table (so every worker process sees the
same spend), re-read at most every ``refresh_seconds`` and kept current in between with
this process's own calls.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from providers.errors import BudgetExceeded
from providers.usage import UsageRecorder, spent_since
from store import Database

SPEND_BUDGET = "spend_budget"
TOKEN_BUDGET = "token_budget"


@dataclass(frozen=True)
class SpendLimits:
    """USD per period; None: no limit."""

    user_daily: float | None = None
    user_monthly: float | None = None
    tenant_daily: float | None = None
    tenant_monthly: float | None = None

    @property
    def any(self) -> bool:
        return any(
            v is not None
            for v in (self.user_daily, self.user_monthly, self.tenant_daily, self.tenant_monthly)
        )


def period_start(period: str, now: datetime) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.replace(day=1) if period == "month" else day


class SpendBudgets:
    def __init__(
        self,
        db: Database,
        limits: SpendLimits,
        recorder: UsageRecorder | None = None,
        *,
        refresh_seconds: float = 5.0,
    ) -> None:
        self.db = db
        self.limits = limits
        self.recorder = recorder
        self.refresh_seconds = refresh_seconds
        # (scope, tenant, user, period, period_start) -> (db total, local since, read at)
        self._totals: dict[tuple[str, str, str | None, str, datetime], list[float]] = {}
        self._reading: dict[tuple[str, str, str | None, str, datetime], asyncio.Future[list[float]]]
        self._reading = {}

    def _checks(self, tenant: str, user: str | None) -> list[tuple[str, str | None, str, float]]:
        checks: list[tuple[str, str | None, str, float]] = []
        for scope, period, limit in (
            ("user", "day", self.limits.user_daily),
            ("user", "month", self.limits.user_monthly),
            ("tenant", "day", self.limits.tenant_daily),
            ("tenant", "month", self.limits.tenant_monthly),
        ):
            if limit is None or (scope == "user" and user is None):
                continue
            checks.append((scope, user if scope == "user" else None, period, limit))
        return checks

    async def check(self, *, tenant: str, user: str | None, estimate_usd: float) -> None:
        """Raises:
        BudgetExceeded: spend so far plus ``estimate_usd`` would pass a limit (reason
            ``spend_budget``; the message names the budget, the spend and the limit).
        """
        now = datetime.now(UTC)
        for scope, who, period, limit in self._checks(tenant, user):
            spent = await self._spent(scope, tenant, who, period, now)
            if spent + estimate_usd > limit:
                name = f"{'daily' if period == 'day' else 'monthly'} spend budget of the " + (
                    f"user {who!r}" if scope == "user" else f"tenant {tenant!r}"
                )
                raise BudgetExceeded(
                    SPEND_BUDGET,
                    f"the {name} (${limit:.4f}) is used up: ${spent:.4f} spent, this call "
                    f"would cost about ${estimate_usd:.4f}; raise the limit or wait for the "
                    f"next {period}",
                )

    def add(self, *, tenant: str, user: str | None, cost_usd: float) -> None:
        """Count a finished call's actual cost until the next read of the usage table."""
        if cost_usd <= 0:
            return
        for key, entry in self._totals.items():
            scope, key_tenant, key_user = key[0], key[1], key[2]
            if key_tenant == tenant and (scope == "tenant" or key_user == user):
                entry[1] += cost_usd

    async def _spent(
        self, scope: str, tenant: str, user: str | None, period: str, now: datetime
    ) -> float:
        start = period_start(period, now)
        key = (scope, tenant, user, period, start)
        entry = self._totals.get(key)
        if entry is None or time.monotonic() - entry[2] > self.refresh_seconds:
            # One read per key at a time: concurrent calls of one user await the same read
            # rather than each querying the usage table.
            reading = self._reading.get(key)
            if reading is None:
                reading = asyncio.ensure_future(self._read(key, scope, tenant, user, start))
                self._reading[key] = reading
                reading.add_done_callback(lambda _: self._reading.pop(key, None))
            entry = await asyncio.shield(reading)
        return entry[0] + entry[1]

    async def _read(
        self,
        key: tuple[str, str, str | None, str, datetime],
        scope: str,
        tenant: str,
        user: str | None,
        start: datetime,
    ) -> list[float]:
        total = await spent_since(
            self.db, tenant=tenant, user=user if scope == "user" else None, since=start
        )
        # Rows this process recorded but has not written yet are not in the table.
        pending = sum(
            row.cost_usd
            for row in (self.recorder.pending if self.recorder is not None else ())
            if row.tenant == tenant
            and (scope == "tenant" or row.user == user)
            and row.created_at >= start
        )
        entry = [total, pending, time.monotonic()]
        self._totals[key] = entry
        return entry
