"""The run queue's workers: claim runs from SQL with a lease, heartbeat, execute.

A run whose lease lapsed (its worker died) is claimed again and continues from
its last checkpoint; a lease has one owner, so no run executes twice at once.
Cancellation requested by another process is noticed within ``CANCEL_POLL_SECONDS``
(SQLite); on PostgreSQL the ``relaygraph_runs`` notification (migration 0012) brings new
runs and cancellations at once, wherever they were written, and polling slows to a
safety net. Shutdown hands in-flight runs back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from runtime.events import TERMINAL, EventLog
from runtime.runs import LEASE_SECONDS, Runner, lease_owner
from store.models import Run
from store.notify import RUNS_CHANNEL, parse_run_notification
from tools.fencing import LeaseLostError

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
CANCEL_POLL_SECONDS = 0.25
NOTIFIED_POLL_SECONDS = 2.0
"""Queue and cancel polls where notifications wake the worker (lapsed leases, lost
notifications); leases are still renewed every ``LEASE_SECONDS / 3``."""


class Worker:
    """Executes up to ``concurrency`` runs at a time from the queue."""

    def __init__(self, runner: Runner, *, concurrency: int = 4) -> None:
        self.runner = runner
        self.concurrency = concurrency
        self.owner = lease_owner()
        self._wake = asyncio.Event()
        self._backlog = True
        """The queue may hold runs for this worker: a submission here was not adopted, the
        last claim filled every free slot, or a finished run's thread has another run."""
        self._stopping = asyncio.Event()
        self._active: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        notified = runner.system.db.listener is not None
        self._poll_seconds = NOTIFIED_POLL_SECONDS if notified else POLL_SECONDS
        self._cancel_poll_seconds = NOTIFIED_POLL_SECONDS if notified else CANCEL_POLL_SECONDS

    def wake(self) -> None:
        """Look at the queue now (a run was just submitted or finished)."""
        self._backlog = True
        self._wake.set()

    def start(self) -> None:
        listener = self.runner.system.db.listener
        if listener is not None:
            self._unlisten = listener.subscribe(RUNS_CHANNEL, self._run_changed)
        self._loop_task = asyncio.create_task(self._loop(), name=f"worker {self.owner}")

    def _run_changed(self, payload: str | None) -> None:
        """A ``relaygraph_runs`` notification: a run to claim, a thread freed, or a
        cancellation of one of ours (``None``: reconnected, look at everything)."""
        if payload is None:
            self.wake()
            return
        run_id, status, cancel, _owner = parse_run_notification(payload)
        if cancel is not None and run_id in self._active:
            self.runner.cancel_local(run_id)
        if status == "pending" or status in TERMINAL:
            self.wake()

    async def stop(self, *, grace_seconds: float = 5.0) -> None:
        """Stop claiming; let in-flight runs finish within ``grace_seconds``, then hand the
        rest back to the queue (another worker resumes them from their checkpoints)."""
        self._stopping.set()
        self._wake.set()
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._loop_task is not None:
            await self._loop_task
        if self._active:
            _, pending = await asyncio.wait(list(self._active.values()), timeout=grace_seconds)
            for run_id, task in list(self._active.items()):
                if task in pending:
                    self.runner.hand_back(run_id)
                    task.cancel()  # at once, even mid set-up: execute() hands it back
            await asyncio.gather(*pending, return_exceptions=True)

    async def _loop(self) -> None:
        watcher = asyncio.create_task(self._watch(), name=f"watch {self.owner}")
        try:
            while not self._stopping.is_set():
                free = self.concurrency - len(self._active)
                claimed: list[str] = []
                if free > 0:
                    self._backlog = False  # a wake() from now on sets it again
                    try:
                        claimed = await self.runner.claim_batch(self.owner, free)
                    except Exception:  # a locked or unreachable store: retry after the poll
                        self._backlog = True
                        log.exception("claiming runs failed")
                    if claimed and len(claimed) == free:
                        self._backlog = True
                for run_id in claimed:
                    if run_id in self._active:
                        # Its lease lapsed while it still executes here (the store was
                        # busy past a renewal): the claim renewed it; never start it twice.
                        continue
                    task = asyncio.create_task(self._execute(run_id), name=f"run {run_id}")
                    self._active[run_id] = task
                if claimed and len(claimed) == free:
                    continue  # maybe more waiting
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_seconds)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    def has_room(self) -> bool:
        return not self._stopping.is_set() and len(self._active) < self.concurrency

    def adopt(self, run_id: str, run: Run | None = None) -> None:
        """Execute a run this worker leased at submission (no claim round trip; ``run``,
        the row the submission wrote, saves reading it back)."""
        events = self.runner.events.open_fresh(run_id)
        task = asyncio.create_task(self._execute(run_id, events, run), name=f"run {run_id}")
        self._active[run_id] = task

    async def _execute(
        self, run_id: str, events: EventLog | None = None, run: Run | None = None
    ) -> None:
        try:
            await self.runner.execute(run_id, self.owner, events, run=run)
        except asyncio.CancelledError:
            pass
        except LeaseLostError:
            log.warning("lost the lease of run %s to another worker; stopped it here", run_id)
        except Exception:
            log.exception("run %s failed outside the graph", run_id)
        finally:
            self._active.pop(run_id, None)
            # A slot is free: claim only if the queue may hold something (a claim is a
            # write transaction; after every run it would cost more than the run itself).
            if self._backlog or self.runner.take_queued_hint():
                self._backlog = True
                self._wake.set()

    async def _watch(self) -> None:
        """For all of this worker's runs at once: renew the leases, and cancel runs that
        another process asked to stop (one query per interval, not one per run)."""
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + LEASE_SECONDS / 3
        while True:
            await asyncio.sleep(self._cancel_poll_seconds)
            if not self._active:
                continue
            try:
                if loop.time() >= renew_at:
                    held = await self.runner.renew_leases(self.owner)
                    renew_at = loop.time() + LEASE_SECONDS / 3
                    for run_id in [r for r in self._active if r not in held]:
                        log.warning("lost the lease of run %s; stopping it here", run_id)
                        self.runner.hand_back(run_id)
                        self.runner.cancel_local(run_id)
                for run_id in await self.runner.cancels_for(self.owner):
                    self.runner.cancel_local(run_id)
            except Exception:  # the store is busy: try again next interval
                log.exception("watching runs failed")
