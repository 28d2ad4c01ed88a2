"""Usage rows: one per model call (and per failed deployment, and per cache hit).

Rows are buffered and written in batches (one transaction per ~0.2 s, not per call): a
busy server makes hundreds of calls a second and SQLite has one writer. ``flush`` writes
what is pending (the router's budget checks and ``aclose`` call it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from sqlalchemy import Integer, String, case, func, insert, select

from providers import metrics
from store import Database
from store.models import ProviderUsage

GroupBy = Literal["tenant", "user", "assistant", "model", "day", "paid_by"]
PaidBy = Literal["tenant", "deployment"]
GROUP_COLUMNS: dict[str, Any] = {
    "tenant": ProviderUsage.tenant,
    "user": ProviderUsage.user,
    "assistant": ProviderUsage.assistant_id,
    "model": ProviderUsage.deployment,
    # SQLite stores UTC timestamps as ISO text: date() reads them; PostgreSQL has date() too.
    "day": func.date(ProviderUsage.created_at, type_=String),
    "paid_by": ProviderUsage.paid_by,
}


@dataclass
class UsageRecord:
    tenant: str
    alias: str
    deployment: str
    user: str | None = None
    run_id: str | None = None
    assistant_id: str | None = None
    node: str | None = None
    model_version: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    tokens_estimated: bool = False
    cost_usd: float = 0.0
    price_known: bool = True
    latency_ms: float = 0.0
    attempts: int = 1
    cache_hit: bool = False
    fallback: bool = False
    streamed: bool = False
    error: str | None = None
    paid_by: PaidBy = "deployment"
    """Whose key the call used: the tenant's own credential, or the deployment's key."""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class UsageRecorder:
    """Buffers usage rows and writes them in batches."""

    def __init__(self, db: Database, *, flush_interval: float = 0.2, max_batch: int = 500) -> None:
        self.db = db
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self._pending: list[UsageRecord] = []
        self._flusher: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._watchers: dict[str, Callable[[UsageRecord], None]] = {}

    @property
    def pending(self) -> Sequence[UsageRecord]:
        return tuple(self._pending)

    def watch(self, run_id: str, callback: Callable[[UsageRecord], None]) -> Callable[[], None]:
        """Call ``callback`` with every row of ``run_id`` as it is recorded (the run's step
        trace); returns the function that stops watching."""
        self._watchers[run_id] = callback

        def unwatch() -> None:
            if self._watchers.get(run_id) is callback:
                del self._watchers[run_id]

        return unwatch

    def record(self, row: UsageRecord) -> None:
        """Queue a row; it is written within ``flush_interval`` seconds."""
        metrics.observe(row)
        watcher = self._watchers.get(row.run_id) if row.run_id else None
        if watcher is not None:
            watcher(row)
        self._pending.append(row)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await self.flush()

    async def flush(self) -> None:
        """Write every pending row (in batches of ``max_batch``)."""
        async with self._lock:
            while self._pending:
                batch = self._pending[: self.max_batch]
                async with self.db.transaction() as session:
                    await session.execute(insert(ProviderUsage), [asdict(row) for row in batch])
                del self._pending[: len(batch)]

    async def aclose(self) -> None:
        # Never cancel a flush mid-transaction: its connection would keep SQLite's write
        # lock until rolled back, and the final flush below would wait on it.
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
        await self.flush()


async def spent_since(
    db: Database, *, tenant: str, since: datetime, user: str | None = None
) -> float:
    """USD spent by ``tenant`` (or one of its users) since ``since``."""
    query = select(func.coalesce(func.sum(ProviderUsage.cost_usd), 0.0)).where(
        ProviderUsage.tenant == tenant, ProviderUsage.created_at >= since
    )
    if user is not None:
        query = query.where(ProviderUsage.user == user)
    async with db.session() as session:
        return float((await session.execute(query)).scalar_one())


@dataclass(frozen=True)
class UsageSummaryRow:
    group: dict[str, Any]
    calls: int
    errors: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: float
    tenant_key_calls: int = 0
    """Calls made with the tenant's own provider key (bring your own key)."""
    tenant_key_cost_usd: float = 0.0
    """Their cost: billed to the tenant by the provider, not to the deployment."""


async def summarize_usage(
    db: Database,
    *,
    tenant: str | None,
    user: str | None = None,
    group_by: Sequence[GroupBy] = ("model",),
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[UsageSummaryRow]:
    """Totals grouped by ``group_by``; ``tenant`` None means every tenant (operators only).

    Raises:
        ValueError: an unknown grouping.
    """
    unknown = [g for g in group_by if g not in GROUP_COLUMNS]
    if unknown:
        raise ValueError(f"unknown grouping {unknown}; use: {', '.join(GROUP_COLUMNS)}")
    columns = [GROUP_COLUMNS[g].label(g) for g in group_by]
    tenant_paid = ProviderUsage.paid_by == "tenant"
    query = select(
        *columns,
        func.count().label("calls"),
        func.count(ProviderUsage.error).label("errors"),
        func.sum(func.cast(ProviderUsage.cache_hit, Integer)).label("cache_hits"),
        func.sum(ProviderUsage.input_tokens).label("input_tokens"),
        func.sum(ProviderUsage.output_tokens).label("output_tokens"),
        func.sum(ProviderUsage.cached_tokens).label("cached_tokens"),
        func.sum(ProviderUsage.cost_usd).label("cost_usd"),
        func.sum(func.cast(tenant_paid, Integer)).label("tenant_key_calls"),
        func.sum(case((tenant_paid, ProviderUsage.cost_usd), else_=0.0)).label(
            "tenant_key_cost_usd"
        ),
    )
    if tenant is not None:
        query = query.where(ProviderUsage.tenant == tenant)
    if user is not None:
        query = query.where(ProviderUsage.user == user)
    if since is not None:
        query = query.where(ProviderUsage.created_at >= since)
    if until is not None:
        query = query.where(ProviderUsage.created_at < until)
    if columns:
        query = query.group_by(*columns).order_by(*columns)
    async with db.session() as session:
        rows = (await session.execute(query)).all()
    return [
        UsageSummaryRow(
            group={g: _jsonable(getattr(row, g)) for g in group_by},
            calls=int(row.calls or 0),
            errors=int(row.errors or 0),
            cache_hits=int(row.cache_hits or 0),
            input_tokens=int(row.input_tokens or 0),
            output_tokens=int(row.output_tokens or 0),
            cached_tokens=int(row.cached_tokens or 0),
            cost_usd=round(float(row.cost_usd or 0.0), 8),
            tenant_key_calls=int(row.tenant_key_calls or 0),
            tenant_key_cost_usd=round(float(row.tenant_key_cost_usd or 0.0), 8),
        )
        for row in rows
        if row.calls
    ]


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value
