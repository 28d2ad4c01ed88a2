"""Group commit of run endings: runs that end while an ending commits, end together.

A run's ending is one write: its final status (the lease released), its thread's status
and its last events, in one transaction, so whoever sees the run ended also sees every
event. When many runs end at once (a thousand slow runs finishing together), each ending
in its own transaction would queue on SQLite's single writer; here the endings that
arrive while one commits wait and commit together in the next transaction
(``runtime.group_commit``), a fixed handful of statements (executemany) whatever the batch
size.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select, update

from runtime.events import EventBus, EventLog, write_rows
from runtime.group_commit import GroupCommit
from store import Database
from store.models import Run, Thread, utcnow

ACTIVE = ("pending", "running")

_END_RUN = (
    update(Run.__table__)  # type: ignore[arg-type]
    .where(Run.__table__.c.run_id == bindparam("b_run_id"))
    .values(
        status=bindparam("b_status"),
        stop_reason=bindparam("b_stop_reason"),
        error=bindparam("b_error"),
        ended_at=bindparam("b_now"),
        updated_at=bindparam("b_now"),
        lease_owner=None,
        lease_expires_at=None,
    )
)
# The batch's runs and their threads' other active runs (built once: building it per
# ending took longer than running it).
_RUNS_OF_THREADS = select(Run.run_id, Run.thread_id, Run.status).where(
    Run.thread_id.in_(bindparam("b_thread_ids", expanding=True)),
    or_(Run.status.in_(ACTIVE), Run.run_id.in_(bindparam("b_run_ids", expanding=True))),
)
_THREAD_STATUS = (
    update(Thread.__table__)  # type: ignore[arg-type]
    .where(Thread.__table__.c.thread_id == bindparam("b_thread_id"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_now"))
)


@dataclass
class Ending:
    """How one run ended. ``thread_status`` is its thread's new status unless another run
    of the thread is active and this one did not stop at an interrupt (then ``busy``)."""

    run_id: str
    thread_id: str
    status: str
    stop_reason: str
    error: str | None
    thread_status: str
    interrupted: bool
    log: EventLog


class Endings:
    """Commits run endings, batching those that arrive together."""

    def __init__(self, db: Database, events: EventBus) -> None:
        self.db = db
        self.events = events
        self._group: GroupCommit[Ending, bool] = GroupCommit(
            self._commit_batch, name="run endings", withdraw_on_cancel=False
        )

    async def end(self, ending: Ending) -> bool:
        """Commit ``ending``; whether another run of its thread is active (queued behind
        it). The commit happens even if the caller is cancelled meanwhile.

        Raises:
            Exception: the store refused this ending (alone, not just its batch).
        """
        return await self._group.commit(ending)

    async def _commit_batch(self, batch: list[Ending]) -> list[bool]:
        busy = await self._commit(batch)
        return [ending.thread_id in busy for ending in batch]

    async def _commit(self, batch: list[Ending]) -> set[str]:
        """One transaction for ``batch``; the threads that have another active run."""
        run_ids = [ending.run_id for ending in batch]
        mine = set(run_ids)
        thread_ids = sorted({ending.thread_id for ending in batch})
        taken = [(ending, ending.log.take(), ending.log.take_side()) for ending in batch]
        try:
            async with self.events.write_lock, self.db.write_connection() as connection:
                # One read for both: the batch's runs still present (a deleted thread takes
                # its runs along) and the other runs of their threads still active.
                present: set[str] = set()
                busy: set[str] = set()
                for run_id, thread_id, status in await connection.execute(
                    _RUNS_OF_THREADS, {"b_thread_ids": thread_ids, "b_run_ids": run_ids}
                ):
                    if run_id in mine:
                        present.add(run_id)
                    elif status in ACTIVE:
                        busy.add(thread_id)
                now = utcnow()
                await connection.execute(
                    _THREAD_STATUS,
                    [
                        {
                            "b_thread_id": ending.thread_id,
                            "b_status": "busy"
                            if ending.thread_id in busy and not ending.interrupted
                            else ending.thread_status,
                            "b_now": now,
                        }
                        for ending in batch
                    ],
                )
                ended = [ending for ending in batch if ending.run_id in present]
                if ended:
                    await connection.execute(
                        _END_RUN,
                        [
                            {
                                "b_run_id": ending.run_id,
                                "b_status": ending.status,
                                "b_stop_reason": ending.stop_reason,
                                "b_error": ending.error,
                                "b_now": now,
                            }
                            for ending in ended
                        ],
                    )
                # A run whose row is gone (its thread was deleted) keeps no events.
                events = [
                    row for ending, rows, _ in taken if ending.run_id in present for row in rows
                ]
                side = [
                    row for ending, _, rows in taken if ending.run_id in present for row in rows
                ]
                await write_rows(connection, events, side)
        except BaseException:
            for ending, rows, side_rows in taken:  # for the retry
                ending.log.pending[:0] = rows
                ending.log.side_rows[:0] = side_rows
            raise
        return busy
