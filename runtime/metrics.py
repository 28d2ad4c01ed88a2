"""Prometheus metrics of runs, the queue, interrupts and streams.

Counters and histograms are updated where things happen (runs end in ``runtime.runs``,
streams open in ``api.sse``); the queue and interrupt gauges describe the database, so
they are refreshed from it when ``/metrics`` is scraped rather than kept by hand.
Model and tool metrics live beside their code (``providers``, ``tools``) in the same
default registry.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import func, select

from store import Database
from store.models import Run, Thread

RUNS = Counter(
    "relaygraph_runs",
    "Runs that ended, by assistant, API status and stop reason.",
    ["assistant", "status", "stop_reason"],
)
RUN_SECONDS = Histogram(
    "relaygraph_run_duration_seconds",
    "Wall time of a run from its start to its end.",
    ["assistant"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
STEP_SECONDS = Histogram(
    "relaygraph_step_duration_seconds",
    "Wall time of one graph step (superstep), by the node(s) that ran in it.",
    ["node"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
QUEUE_DEPTH = Gauge("relaygraph_queue_depth", "Runs waiting to be claimed (pending).")
QUEUE_AGE = Gauge(
    "relaygraph_queue_oldest_age_seconds", "Age of the oldest pending run (0 when none)."
)
RUNS_ACTIVE = Gauge("relaygraph_runs_running", "Runs executing now.")
INTERRUPTS_PENDING = Gauge("relaygraph_interrupts_pending", "Threads waiting for a human decision.")
SSE_CONNECTIONS = Gauge("relaygraph_sse_connections", "Open server-sent-event streams.")


async def refresh_from_database(db: Database) -> None:
    """Set the gauges that describe the database (called on each scrape)."""
    async with db.session() as session:
        pending = (
            await session.execute(
                select(func.count(), func.min(Run.created_at)).where(Run.status == "pending")
            )
        ).one()
        running = await session.scalar(
            select(func.count()).select_from(Run).where(Run.status == "running")
        )
        waiting = await session.scalar(
            select(func.count()).select_from(Thread).where(Thread.status == "interrupted")
        )
    count, oldest = pending
    QUEUE_DEPTH.set(count or 0)
    QUEUE_AGE.set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0)
    RUNS_ACTIVE.set(running or 0)
    INTERRUPTS_PENDING.set(waiting or 0)
