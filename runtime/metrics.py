"""Prometheus metrics of runs, the queue, interrupts and streams.

Counters and histograms are updated where things happen (runs end in ``runtime.runs``,
streams open in ``api.sse``); the queue and interrupt gauges describe the database, so
they are refreshed from it when ``/metrics`` is scraped rather than kept by hand.
Model and tool metrics live beside their code (``providers``, ``tools``) in the same
default registry.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from store import Database
from store.models import Run, Thread

if TYPE_CHECKING:
    from runtime.system import System

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


BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}


class BreakerCollector(Collector):
    """``relaygraph_model_breaker_state`` of every deployment of this process's routers,
    read at scrape time (0 closed, 1 half-open, 2 open)."""

    def __init__(self) -> None:
        self._systems: list[weakref.ref[System]] = []

    def watch(self, system: System) -> None:
        self._systems = [ref for ref in self._systems if ref() is not None]
        self._systems.append(weakref.ref(system))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "relaygraph_model_breaker_state",
            "Circuit breaker of a model deployment: 0 closed, 1 half-open, 2 open.",
            labels=["deployment"],
        )
        states: dict[str, int] = {}
        for ref in list(self._systems):
            system = ref()
            if system is None:
                continue
            for router in system.routers():
                for deployment in router.deployments:
                    state = BREAKER_STATES[deployment.breaker.state]
                    states[deployment.name] = max(state, states.get(deployment.name, 0))
        for name, state in sorted(states.items()):
            family.add_metric([name], state)
        yield family


BREAKERS = BreakerCollector()
REGISTRY.register(BREAKERS)
