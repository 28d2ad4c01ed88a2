"""Fencing of side effects by a run's lease.

Each claim of a run gives it a new lease: an owner and an ``attempt`` number (bumped by
every claim). A worker that stalled past its lease may still be executing the run while
another worker resumes it from the last checkpoint; the two executions' tool calls have
different task ids, so the ledger alone would let both take effect. The runner binds the
lease it holds (``bind_lease``) for the duration of an execution; the executor then checks,
inside the transaction that commits an effect (or records it ``started``), that the run is
still held by that very lease, and raises ``LeaseLostError`` otherwise: the transaction
rolls back and the stale execution stops, writing nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Run


@dataclass(frozen=True)
class RunLease:
    run_id: str
    owner: str
    attempt: int


class LeaseLostError(Exception):
    """The run is no longer held by this execution's lease: another owner claimed it."""

    def __init__(self, lease: RunLease) -> None:
        super().__init__(
            f"run {lease.run_id} is no longer leased to {lease.owner} "
            f"(attempt {lease.attempt}); another worker took it over"
        )
        self.lease = lease


_current: ContextVar[RunLease | None] = ContextVar("relaygraph_run_lease", default=None)


@contextlib.contextmanager
def bind_lease(lease: RunLease) -> Iterator[None]:
    """Tool calls made in this context (graph nodes inherit it) are fenced by ``lease``."""
    token = _current.set(lease)
    try:
        yield
    finally:
        _current.reset(token)


def current_lease(run_id: str | None) -> RunLease | None:
    """The lease bound for ``run_id`` in this context, if any."""
    lease = _current.get()
    if lease is None or run_id is None or lease.run_id != run_id:
        return None
    return lease


async def verify_lease(session: AsyncSession, lease: RunLease | None) -> None:
    """Raise ``LeaseLostError`` unless the run is still running under ``lease``, checked
    in ``session``'s transaction (PostgreSQL: the row stays locked until it commits, so a
    claim cannot slip in between; SQLite: the write transaction serialises with claims)."""
    if lease is None:
        return
    held = (
        await session.execute(
            select(Run.run_id)
            .where(
                Run.run_id == lease.run_id,
                Run.lease_owner == lease.owner,
                Run.attempt == lease.attempt,
                Run.status == "running",
            )
            .with_for_update()
        )
    ).first()
    if held is None:
        raise LeaseLostError(lease)
